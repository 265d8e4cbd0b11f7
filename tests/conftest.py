import os
import os.path as osp
import subprocess
import sys

import pytest

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)

FP_CFG = 'configs/demo/retinanet_r18_fp_demo.py'
TRS_CFG = 'configs/demo/retinanet_r18_w4a4_trs_demo.py'
SGD_CFG = 'configs/demo/retinanet_r18_w4a4_sgd_demo.py'
# a 6-iteration TRS run: fixed target and eta (the demo config measures them over 30
# iterations), cosine schedules shortened to the run
TRS_OPTS = ['optim_wrapper.init_target=0.01', 'optim_wrapper.eta=0.05',
            'param_scheduler.0.T_max=6', 'param_scheduler.0.end=6',
            'param_scheduler.1.T_max=6', 'param_scheduler.1.end=6']


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
             f'test_evaluator.ann_file={root}annotations/instances_test.json',
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


def kill_after_checkpoint(args, work_dir, ckpt='iter_3.pth', timeout=400):
    """Start `tools/train.py args` and SIGKILL it right after `ckpt` is complete
    (MMEngine writes `last_checkpoint` only then), as a crash would."""
    import signal
    import time
    env = dict(os.environ, PYTHONWARNINGS='ignore')
    proc = subprocess.Popen([sys.executable] + args, cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    marker = osp.join(work_dir, 'last_checkpoint')
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if osp.isfile(marker) and open(marker).read().strip().endswith(ckpt):
            break
        time.sleep(0.02)
    assert proc.poll() is None, 'run ended before it could be killed'
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def load_without_warnings(model, ckpt):
    """MMEngine's load_checkpoint, strict; returns the warnings it logged (missing or
    unexpected keys), which should be none."""
    from mmengine.logging import MMLogger
    from mmengine.runner.checkpoint import load_checkpoint
    logger = MMLogger.get_instance('mmtrs_test_load')
    messages = []
    logger.warning = lambda msg, *a, **k: messages.append(msg)
    load_checkpoint(model, str(ckpt), strict=True, logger=logger)
    return messages


def scalars(work_dir):
    from mmtrs.utils import read_scalars
    records = read_scalars(work_dir)
    assert records, f'no scalars in {work_dir}'
    return records


def short_run(iters, ckpt_interval):
    return [f'train_cfg.max_iters={iters}', f'train_cfg.val_interval={iters}',
            f'default_hooks.checkpoint.interval={ckpt_interval}',
            'default_hooks.checkpoint.max_keep_ckpts=5', 'default_hooks.logger.interval=1',
            'randomness.seed=0', 'randomness.deterministic=True',
            # a few iterations do not lift scores above 0.05: keep every detection so
            # CocoMetric has something to score
            'model.test_cfg.score_thr=0.0']


@pytest.fixture(scope='session')
def fp_ckpt(tiny_coco, tmp_path_factory):
    wd = str(tmp_path_factory.mktemp('fp'))
    run_tool(['tools/train.py', FP_CFG, '--work-dir', wd, '--cfg-options',
              *data_options(tiny_coco), *short_run(8, 8)])
    recs = [r for r in scalars(wd) if 'coco/bbox_mAP' in r]
    assert recs, 'the FP run did not evaluate with CocoMetric'
    for key in ('coco/bbox_mAP', 'coco/bbox_mAP_50', 'coco/bbox_mAP_75', 'coco/bbox_mAP_s',
                'coco/bbox_mAP_m', 'coco/bbox_mAP_l'):
        assert key in recs[-1]
    return osp.join(wd, 'iter_8.pth')


@pytest.fixture(scope='session')
def trs_run(tiny_coco, fp_ckpt, tmp_path_factory):
    wd = str(tmp_path_factory.mktemp('trs'))
    run_tool(['tools/train.py', TRS_CFG, '--work-dir', wd, '--cfg-options',
              *data_options(tiny_coco), *short_run(6, 3), f'load_from={fp_ckpt}',
              *TRS_OPTS])
    return wd
