"""Read the scalars MMEngine's LocalVisBackend logged for a run."""
import glob
import json
import os.path as osp

# (column name, CocoMetric key): the columns of the paper's Table 4
COCO_BBOX_METRICS = [('AP', 'coco/bbox_mAP'), ('AP50', 'coco/bbox_mAP_50'),
                     ('AP75', 'coco/bbox_mAP_75'), ('APs', 'coco/bbox_mAP_s'),
                     ('APm', 'coco/bbox_mAP_m'), ('APl', 'coco/bbox_mAP_l')]


def read_scalars(work_dir):
    """Records of `<work_dir>/<timestamp>/vis_data/scalars.json`, one dict per logged
    step; [] when the work dir has none.

    A run resumed into the same work dir (`--resume`) writes a new timestamp dir that
    starts at the resumed iteration: runs are stitched in time order, a later run
    replacing the earlier records from its first training iteration on (a fresh re-run,
    starting at iteration 1, therefore replaces everything). Validation records carry no
    iteration (MMEngine logs them with step 0 in an iteration-based loop): those logged
    before the cut are kept, the later ones go with the iterations they followed."""
    records = []
    for path in sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))):
        with open(path) as f:
            run = [json.loads(line) for line in f if line.strip()]
        iters = [r['iter'] for r in run if 'iter' in r]
        if iters:
            first = min(iters)
            cut = next((i for i, r in enumerate(records) if r.get('iter', -1) >= first),
                       len(records))
            records = records[:cut]
        records += run
    return records


def final_metrics(work_dir):
    """The last COCO evaluation logged in `work_dir` ({CocoMetric key: value}), or None."""
    recs = [r for r in read_scalars(work_dir) if 'coco/bbox_mAP' in r]
    return recs[-1] if recs else None
