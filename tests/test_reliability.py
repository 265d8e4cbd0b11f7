"""Reliability: resume after SIGKILL, multi-process (torchrun, gloo) training."""
import glob
import os
import os.path as osp
import signal
import subprocess
import sys
import time

import pytest
import torch

from conftest import ROOT, TRS_CFG, TRS_OPTS, data_options, run_tool, short_run



def test_sigkill_then_resume_matches_uninterrupted(tiny_coco, fp_ckpt, trs_run, tmp_path):
    """Kill -9 a TRS run right after its iter-3 checkpoint, `--resume` it: the final
    checkpoint equals the uninterrupted run's (bit-identical on CPU)."""
    wd = str(tmp_path / 'killed')
    args = ['tools/train.py', TRS_CFG, '--work-dir', wd, '--cfg-options',
            *data_options(tiny_coco), *short_run(6, 3), f'load_from={fp_ckpt}', *TRS_OPTS,
            # slow the run down so the kill lands between the two checkpoints
            'train_dataloader.batch_size=8']
    env = dict(os.environ, PYTHONWARNINGS='ignore')
    proc = subprocess.Popen([sys.executable] + args, cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    marker = osp.join(wd, 'last_checkpoint')
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if osp.isfile(marker) and open(marker).read().strip().endswith('iter_3.pth'):
            break
        time.sleep(0.02)
    assert proc.poll() is None, 'run ended before it could be killed'
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not osp.exists(osp.join(wd, 'iter_6.pth'))
    # a checkpoint cut off mid-write must not be picked up by --resume
    with open(osp.join(wd, 'iter_5.pth'), 'wb') as f:
        f.write(b'PK\x03\x04 truncated')
    run_tool(['tools/train.py', TRS_CFG, '--work-dir', wd, '--resume', '--cfg-options',
              *data_options(tiny_coco), *short_run(6, 3), *TRS_OPTS,
              'train_dataloader.batch_size=8'])
    # the uninterrupted reference with the same batch size
    ref = str(tmp_path / 'ref')
    run_tool(['tools/train.py', TRS_CFG, '--work-dir', ref, '--cfg-options',
              *data_options(tiny_coco), *short_run(6, 3), f'load_from={fp_ckpt}',
              *TRS_OPTS, 'train_dataloader.batch_size=8'])
    a = torch.load(osp.join(ref, 'iter_6.pth'), map_location='cpu')
    b = torch.load(osp.join(wd, 'iter_6.pth'), map_location='cpu')
    for k, v in a['state_dict'].items():
        assert torch.equal(v, b['state_dict'][k]), k
    for key in ('K', 'U', 'k'):
        assert torch.equal(a['optimizer']['trs'][key], b['optimizer']['trs'][key]), key


def test_two_process_training_keeps_ranks_identical(tiny_coco, fp_ckpt, tmp_path):
    """torchrun --nproc_per_node=2 ... --launcher pytorch on CPU (gloo). The
    TransitionRateHook checks every iteration that all ranks hold the same k, K, U and
    quantized weights, and raises otherwise; the run must finish and evaluate."""
    wd = str(tmp_path / 'ddp')
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node=2',
           '--master_port=29517', 'tools/train.py', TRS_CFG, '--work-dir', wd,
           '--launcher', 'pytorch', '--cfg-options', *data_options(tiny_coco),
           *short_run(4, 4), f'load_from={fp_ckpt}', *TRS_OPTS,
           'train_dataloader.batch_size=2', 'custom_hooks.1.interval=1',
           'env_cfg.dist_cfg.backend=gloo']
    env = dict(os.environ, PYTHONWARNINGS='ignore', OMP_NUM_THREADS='1')
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    ck = torch.load(osp.join(wd, 'iter_4.pth'), map_location='cpu')
    assert ck['optimizer']['trs']['steps'] == 4
    logs = ''.join(open(f).read() for f in glob.glob(osp.join(wd, '*', '*.log')))
    assert 'Distributed training: True' in logs and 'GPU number: 2' in logs  # world size
    assert 'all 2 ranks hold the same TR state' in logs
    assert 'coco/bbox_mAP' in logs
