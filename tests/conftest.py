import os
import os.path as osp
import subprocess
import sys

import pytest

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)


@pytest.fixture(scope='session')
def tiny_coco(tmp_path_factory):
    """A small generated COCO set (128 px) shared by the end-to-end tests."""
    from mmtrs.datasets.synthetic_coco import make_synthetic_coco
    out = tmp_path_factory.mktemp('tiny_coco')
    make_synthetic_coco(str(out), num_train=16, num_val=8, img_size=128, seed=1,
                        progress=False)
    return str(out)


def data_options(root):
    """--cfg-options pointing a synthetic-dataset config at `root` with 128 px images."""
    root = root.rstrip('/') + '/'
    opts = []
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        opts += [f'{loader}.dataset.data_root={root}', f'{loader}.num_workers=0',
                 f'{loader}.persistent_workers=False', f'{loader}.batch_size=4']
    opts += [f'val_evaluator.ann_file={root}annotations/instances_val.json',
             f'test_evaluator.ann_file={root}annotations/instances_val.json',
             'train_dataloader.dataset.pipeline.2.scale=(128,128)',
             'val_dataloader.dataset.pipeline.1.scale=(128,128)',
             'test_dataloader.dataset.pipeline.1.scale=(128,128)']
    return opts


def run_tool(args, timeout=600, check=True, env=None):
    """Run a tools/ script the way a user does; returns the CompletedProcess."""
    e = dict(os.environ, PYTHONWARNINGS='ignore', OMP_NUM_THREADS='2')
    e.update(env or {})
    proc = subprocess.run([sys.executable] + args, cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, env=e)
    if check and proc.returncode != 0:
        raise AssertionError(f'{args} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n'
                             f'{proc.stderr[-5000:]}')
    return proc
