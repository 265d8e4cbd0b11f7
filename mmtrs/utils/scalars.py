"""Read the scalars MMEngine's LocalVisBackend logged for a run."""
import glob
import json
import os.path as osp

# (column name, CocoMetric key): the columns of the paper's Table 4
COCO_BBOX_METRICS = [('AP', 'coco/bbox_mAP'), ('AP50', 'coco/bbox_mAP_50'),
                     ('AP75', 'coco/bbox_mAP_75'), ('APs', 'coco/bbox_mAP_s'),
                     ('APm', 'coco/bbox_mAP_m'), ('APl', 'coco/bbox_mAP_l')]


def read_scalars(work_dir):
    """Records of `<work_dir>/<timestamp>/vis_data/scalars.json` of the newest run, one
    dict per logged step; [] when the work dir has none."""
    runs = sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json')))
    if not runs:
        return []
    with open(runs[-1]) as f:
        return [json.loads(line) for line in f if line.strip()]


def final_metrics(work_dir):
    """The last COCO evaluation logged in `work_dir` ({CocoMetric key: value}), or None."""
    recs = [r for r in read_scalars(work_dir) if 'coco/bbox_mAP' in r]
    return recs[-1] if recs else None
