"""Read the scalars MMEngine's LocalVisBackend logged for a run."""
import glob
import json
import os.path as osp


def read_scalars(work_dir):
    """Records of `<work_dir>/<timestamp>/vis_data/scalars.json` of the newest run, one
    dict per logged step; [] when the work dir has none."""
    runs = sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json')))
    if not runs:
        return []
    with open(runs[-1]) as f:
        return [json.loads(line) for line in f if line.strip()]
