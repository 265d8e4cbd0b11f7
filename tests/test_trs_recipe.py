"""The TR-scheduling recipe every shipped TRS config carries (docs/tr_scheduling.md, "How
to set up TR scheduling for a new model"; chosen by benchmarks/recipe_study.py): R^0
measured under the ordinary LR and scaled by `auto_target_scale` (3 over SGD, 1 over
Adam and AdamW: each optimizer's own selection), U^0 = that LR. Every
TRS config in configs/ (and the one-step recipe's `quant_recipe.tr`) is found by what it
builds, not by a list, and the demo ones train until R^0 is set, checked against the
running TR counted here from the integer levels."""
import copy
import glob
import json
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper

import mmtrs  # noqa: F401
from mmtrs.quant import quantized_layers

from conftest import ROOT
from test_quantized_models import build, train_steps

RECIPE = dict(init_target='auto', auto_target_scale=3.0, init_talr=None)
ADAM_TYPES = ('Adam', 'AdamW')
TRS_TYPES = ('TRSOptimWrapper', 'AmpTRSOptimWrapper')


def recipe(optimizer_type):
    """The recipe's keys for a TRSOptimWrapper around `optimizer_type`."""
    return dict(RECIPE, auto_target_scale=1.0 if optimizer_type in ADAM_TYPES else 3.0)


def _trs_configs():
    found = []
    for path in sorted(glob.glob(osp.join(ROOT, 'configs', '**', '*.py'), recursive=True)):
        if '_base_' in path:
            continue
        cfg = Config.fromfile(path)
        if cfg.get('optim_wrapper', {}).get('type') in TRS_TYPES:
            found.append(osp.relpath(path, ROOT))
    return found


TRS_CONFIGS = _trs_configs()


def test_every_trs_config_is_found():
    # the demo, COCO, Swin and FCOS configs with TR scheduling, at every bit-width
    assert len(TRS_CONFIGS) >= 15, TRS_CONFIGS
    assert 'configs/retinanet_r50_w4a4_trs.py' in TRS_CONFIGS
    assert 'configs/demo/retinanet_mbv2_w3a3_trs_demo.py' in TRS_CONFIGS


@pytest.mark.parametrize('path', TRS_CONFIGS)
def test_trs_config_carries_the_recipe(path):
    ow = Config.fromfile(osp.join(ROOT, path)).optim_wrapper
    # 'trs_fixed' is the paper's form with fixed values, kept to compare against
    if path.endswith('_trs_fixed_demo.py'):
        assert ow.init_target != 'auto'
        return
    assert {k: ow.get(k) for k in RECIPE} == recipe(ow.optimizer.type)


# the row each recipe study selected on val (docs/results/*.json, written by
# benchmarks/recipe_study.py) and the shipped config that must carry its setting
STUDY_SELECTIONS = [
    ('recipe_study_sgd_sgdt.json', 'SGDT', 'configs/demo/retinanet_mbv2_w3a3_trs_demo.py'),
    ('recipe_study.json', 'AdamT', 'configs/demo/retinanet_mbv2_w3a3_adamt_demo.py'),
    ('recipe_study_w2a2_grids.json', 'SGDT', 'configs/demo/retinanet_mbv2_w2a2_trs_demo.py'),
    ('recipe_study_w4a4_grids.json', 'SGDT', 'configs/demo/retinanet_mbv2_w4a4_trs_demo.py'),
    ('recipe_study_r18_w4a4.json', 'SGDT', 'configs/demo/retinanet_r18_w4a4_trs_demo.py'),
    ('recipe_study_r18_w3a3.json', 'SGDT', 'configs/demo/retinanet_r18_w3a3_trs_demo.py'),
]


@pytest.mark.parametrize('report, row, path', STUDY_SELECTIONS)
def test_demo_config_ships_the_study_selection(report, row, path):
    with open(osp.join(ROOT, 'docs', 'results', report)) as f:
        rows = {r['row']: r for r in json.load(f)['rows']}
    # e.g. 'LR 0.081, auto_target_scale 3'
    setting = dict(item.split(' ') for item in rows[row]['setting'].split(', '))
    ow = Config.fromfile(osp.join(ROOT, path)).optim_wrapper
    assert ow.optimizer.lr == pytest.approx(float(setting['LR']), rel=1e-3)
    assert ow.auto_target_scale == pytest.approx(float(setting['auto_target_scale']))


def test_adam_type_configs_are_among_them():
    # the Adam-family recipe is checked on real configs, not vacuously
    types = {Config.fromfile(osp.join(ROOT, p)).optim_wrapper.optimizer.type
             for p in TRS_CONFIGS}
    assert {'SGD', 'Adam', 'AdamW'} <= types, types


def test_one_step_recipe_carries_it():
    cfg = Config.fromfile(osp.join(ROOT, 'configs/_base_/quant/recipe.py'))
    assert {k: cfg.quant_recipe.tr.get(k) for k in RECIPE} == RECIPE


def _levels(layer):
    """Integer levels of a quantized layer's weight, Eq. 13 (signed, per-tensor scale s):
    round(clip(gamma w / s, alpha, beta)), alpha = -gamma = -2^(b-1), beta = gamma - 1."""
    q = layer.weight_quantizer
    gamma = 2 ** (q.bits - 1)
    return torch.round(torch.clamp(layer.weight.detach() * (gamma / q.scale.detach()),
                                   -gamma, gamma - 1))


@pytest.mark.parametrize('path', ['configs/demo/retinanet_mbv2_w3a3_trs_demo.py',
                                  'configs/demo/retinanet_mbv2_w3a3_adamt_demo.py',
                                  'configs/demo/retinanet_r18_w4a4_trs_demo.py'])
def test_demo_recipe_sets_r0_from_the_counted_tr(path):
    cfg = Config.fromfile(osp.join(ROOT, path))
    n = 3
    ow = copy.deepcopy(cfg.optim_wrapper)
    ow.update(auto_target_iters=n)
    torch.manual_seed(0)
    model = build(cfg.model)
    train_steps(model, build_optim_wrapper(model, copy.deepcopy(ow)), 1)  # scale init
    wrapper = build_optim_wrapper(model, ow)
    layers = [m for _, m in quantized_layers(model) if m.weight.requires_grad]
    m = ow.tr_momentum
    lr = ow.optimizer.lr
    K, prev = 0.0, None
    for t in range(n + 1):
        now = [_levels(q) for q in layers]
        if prev is not None:
            changed = sum(int((a != b).sum()) for a, b in zip(now, prev))
            K = m * K + (1 - m) * changed / sum(a.numel() for a in now)     # Eqs. 5, 10
        prev = now
        assert wrapper.talr == pytest.approx(lr)   # the ordinary LR while measuring
        train_steps(model, wrapper, 1)
    measured = K / (1 - m ** n)                    # bias-corrected, n counted updates
    assert measured > 0, 'no weight changed level: the check would be vacuous'
    scale = recipe(ow.optimizer.type)['auto_target_scale']
    assert wrapper.target_tr == pytest.approx(scale * measured, rel=1e-6)
    assert wrapper.talr == pytest.approx(lr, rel=1e-6)   # U^0 = the ordinary LR
