"""Config fuzzer: wrong values for every documented key fail at build time, naming the key.

Each mutation is applied to a demo config through `Config.merge_from_dict` (the path of
`--cfg-options`), then the model (`MODELS.build`) or the optim wrapper
(`build_optim_wrapper`) is built. A mutation must either fail with a message that names
the key, or be a documented valid value: the VALID_* sets below are written by hand from
docs/quantization.md and docs/tr_scheduling.md, independently of the schema code
(mmtrs/utils/config_schema.py). docs/errors.md reports the counts (checked below).
"""
import copy
import dataclasses
import inspect
import logging
import math
import os.path as osp
import re

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope

import mmtrs  # noqa: F401
from mmtrs.apis.schemas import SCHEMAS
from mmtrs.quant import DEFAULT_QUANT_CFG, QUANT_CFG_SCHEMA, QConv2d, Quantizer
from mmtrs.quant import quantizer as quantizer_module
from mmtrs.trs import TRS_OPTIM_WRAPPER_SCHEMA, TRSettings
from mmtrs.utils.config_schema import ConfigSchemaError, SubDict

from conftest import ROOT

SGD_DEMO = osp.join(ROOT, 'configs/demo/retinanet_r18_w4a4_sgd_demo.py')
TRS_DEMO = osp.join(ROOT, 'configs/demo/retinanet_r18_w4a4_trs_demo.py')
# (demo config, hook type) whose custom_hooks entry is fuzzed
HOOK_CONFIGS = [('sgd', 'TransitionRateHook'), ('sgd', 'OscillationTrackingHook'),
                ('oscfreeze', 'OscillationFreezingHook'), ('lts', 'LTSFreezingHook'),
                ('dampen', 'OscillationDampeningHook'), ('obr', 'BinRegularizationHook')]
NAN, INF = float('nan'), float('inf')

# wrong values tried on every key: wrong types (None, bool, str, list), a number given as
# a string, negative, zero, NaN, +-inf, fractional, huge. (A dict given for a scalar key
# never reaches mmtrs: merge_from_dict refuses it, naming the key.)
COMMON = [None, True, 'abc', '3', -3, 0, NAN, INF, -INF, 2.5, 1e9, [1]]
# key-specific wrong values: string for list, out of range, unknown enum, bad regex,
# patterns that match nothing or everything
EXTRA = {
    'w_bits': [9, 16, 4.0, '4'],
    'a_bits': [9, 4.0],
    'first_layer': [8, 'None', {'x': 1}, dict(w_bits=9), dict(a_bits='8'), dict(init_mult=0),
                    dict(init_mult=-12.0), dict(input_scale='auto'), dict(bits=8)],
    'last_layers': [8, {'x': 1}, dict(w_bits=0), dict(init_mult=NAN), dict(input_scale='fixed')],
    'last_layer_names': ['retina_cls', ['('], ['.*'], ['no_such_module'], ['retina_cls', 3]],
    'first_layer_scope': ['backbon', ''],
    'quant_types': ['Conv2d', ['Conv3d'], [], ('Conv2d', 'Embedding')],
    'skip': ['fpn', ['.*'], ['no_such_module'], ['[']],
    'act_signed': ['yes', 'Auto', 1, False],
    'signed_act': ['neck', ['(']],
    'unsigned_act': ['neck', ['no_such_module']],
    'learn_weight_scale': [1, 'False', False],
    'learn_act_scale': [1, 'False', False],
    'post_scale': [1, 'true', False],
    'recompute_input': [1, 'False', False],
    'init_mult': [-3.0, 0.0],
    'max_float_share': [1.5, -0.1, 0.5, 1],
    'first_layer.w_bits': [9, 8.0],
    'first_layer.a_bits': [9],
    'first_layer.init_mult': [-12.0],
    'first_layer.input_scale': ['auto', 'learned'],
    'last_layers.w_bits': [9],
    'last_layers.init_mult': [0.0],
    # TRSOptimWrapper keys
    'tr_momentum': [1.0, -0.1, 0.99],
    'init_talr': [-1e-3],
    'eta': ['Auto', -0.5, 'auto'],
    'init_target': [-1e-4, 1.5, 1e-2, 1, 'auto'],
    'auto_target_iters': [30.0, 1],
    'eta_adapt_iters': [50.0, 1],
    'per_layer': [1, 'no', False],
    'bias_correction': [0, 'yes', False],
    'allow_learnable_weight_scale': [1, False],
    'auto_target_scale': [-1.0, 1 / 3, 9],
    'controller': ['Log', 'pid', 'additive', 'log'],
    'eta_log': [-0.05, 0.05],
    'log_step_clip': [-0.5, 0.693],
    'log_floor': [-1e-9, 1e-9],
}

# Documented valid values among the mutations (by hand, from the docs):
VALID_QUANT = {
    'a_bits': [None],                                   # FP activations
    'first_layer': [None],                              # keep the first conv FP
    'first_layer.a_bits': [None],                       # float image input
    'first_layer.init_mult': [2.5, 1e9],                # any finite number > 0
    'first_layer.input_scale': ['learned'],
    'last_layers': [None],
    'last_layers.a_bits': [None],
    'last_layers.init_mult': [2.5, 1e9],
    'first_layer_scope': [None, ''],                    # first conv of the whole model
    'last_layer_names': [],                             # [] is not in the mutations
    # False: documented, but the demo's fixed image-input scale needs a signed first
    # layer (the normalized image is negative), so that combination is refused
    'act_signed': [True],
    'learn_weight_scale': [True, False],
    'learn_act_scale': [True, False],
    'post_scale': [True, False],
    'recompute_input': [True, False],
    'init_mult': [2.5, 1e9],
    # the demo converts every conv of its backbone, so any share in [0, 1] passes
    'max_float_share': [None, 0, 0.5, 1],
}
# custom_hooks arguments (the hooks' docstrings), keyed 'Hook.key'
HOOK_EXTRA = {
    'TransitionRateHook.near': [0.5, 0.6],
    'TransitionRateHook.momentum': [1.0],
    'OscillationTrackingHook.momentum': [1.0, 0.01],
    'OscillationFreezingHook.max_bits': [8, 9, 4.0],
    'OscillationFreezingHook.threshold_start': [1.5],
    'LTSFreezingHook.tau_schedule': ['sine', 'cosine', 'Linear'],
    'LTSFreezingHook.max_bits': [9],
    'LTSFreezingHook.momentum': [1.0],
    'OscillationDampeningHook.start': [1.5],
    'BinRegularizationHook.lambda_max': [-0.01],
}
for _h in ('TransitionRateHook', 'OscillationTrackingHook', 'OscillationFreezingHook',
           'LTSFreezingHook'):
    HOOK_EXTRA.setdefault(f'{_h}.interval', []).extend([50.0, 1])
    HOOK_EXTRA.setdefault(f'{_h}.check_ranks', []).extend([1, 'no', False])
VALID_HOOKS = {
    'TransitionRateHook.near': [0.5],                   # distance in levels, (0, 0.5]
    'TransitionRateHook.momentum': [0],                 # m in [0, 1)
    'TransitionRateHook.per_layer': [True],
    'OscillationTrackingHook.momentum': [0.01],         # m in (0, 1)
    'OscillationTrackingHook.osc_threshold': [0],       # fractions in [0, 1]
    'OscillationFreezingHook.osc_threshold': [0],
    'OscillationFreezingHook.start': [0],
    'OscillationFreezingHook.threshold_start': [0],
    'OscillationFreezingHook.threshold_end': [0],
    'OscillationFreezingHook.max_bits': [8],
    'LTSFreezingHook.momentum': [0],                    # m in [0, 1)
    'LTSFreezingHook.warmup': [0],
    'LTSFreezingHook.tau_schedule': ['sine'],
    'LTSFreezingHook.tau_max': [2.5, 1e9],              # any finite tau > 0
    'OscillationDampeningHook.lambda_max': [0, 2.5, 1e9],  # finite, >= 0
    'OscillationDampeningHook.start': [0],
    'BinRegularizationHook.lambda_max': [0, 2.5, 1e9],
    'BinRegularizationHook.start': [0],
}
for _h in ('TransitionRateHook', 'OscillationTrackingHook', 'OscillationFreezingHook',
           'LTSFreezingHook'):
    VALID_HOOKS.setdefault(f'{_h}.interval', []).append(1)
    VALID_HOOKS.setdefault(f'{_h}.check_ranks', []).extend([True, False])
VALID_TRS = {
    'tr_momentum': [0, 0.99],                           # m in [0, 1)
    'init_talr': [None, 0, 2.5, 1e9],                   # U^0 >= 0; None = the LR
    'eta': [None, 0, 2.5, 1e9, 'auto'],                 # eta >= 0 (0: U stays at U^0)
    # R^0 in [0, 1]; 0 is refused with the demo's eta='auto' (cross-key rule)
    'init_target': [1e-2, 1, 'auto'],
    'auto_target_iters': [1],
    'eta_adapt_iters': [1],
    'per_layer': [True, False],
    'bias_correction': [True, False],
    'allow_learnable_weight_scale': [True, False],
    # beyond the paper (docs/tr_scheduling.md): factor > 0, the two controllers,
    # eta_log >= 0, clip and floor > 0
    'auto_target_scale': [2.5, 1e9, 1 / 3, 9],
    'controller': ['additive', 'log'],
    'eta_log': [0, 2.5, 1e9, 0.05],
    'log_step_clip': [2.5, 1e9, 0.693],
    'log_floor': [2.5, 1e9, 1e-9],
}


def _same(a, b):
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return type(a) is type(b) and a == b


def _trs_keys():
    return [f.name for f in dataclasses.fields(TRSettings)]


def _quant_keys():
    keys = list(DEFAULT_QUANT_CFG)
    for sub in ('first_layer', 'last_layers'):
        keys += [f'{sub}.{k}' for k in DEFAULT_QUANT_CFG[sub]]
    return keys


def _hook_keys(hook_type):
    from mmengine.registry import HOOKS
    sig = inspect.signature(HOOKS.get(hook_type).__init__)
    return [f'{hook_type}.{n}' for n in list(sig.parameters)[1:]]


def _mutations(keys, valid, extra=EXTRA):
    out = []
    for key in keys:
        for value in COMMON + extra.get(key, []):
            ok = any(_same(value, v) for v in valid.get(key, []))
            out.append((key, value, ok))
    return out


QUANT_MUTATIONS = _mutations(_quant_keys(), VALID_QUANT)
TRS_MUTATIONS = _mutations(_trs_keys(), VALID_TRS)
HOOK_MUTATIONS = [(cfg, *m) for cfg, hook in HOOK_CONFIGS
                  for m in _mutations(_hook_keys(hook), VALID_HOOKS, HOOK_EXTRA)]


def _id(m):
    return f'{m[-3]}={m[-2]!r}'


@pytest.fixture(scope='module')
def sgd_cfg():
    init_default_scope('mmdet')
    return Config.fromfile(SGD_DEMO)


@pytest.fixture(scope='module')
def trs_cfg_and_model():
    from mmdet.registry import MODELS
    init_default_scope('mmdet')
    cfg = Config.fromfile(TRS_DEMO)
    return cfg, MODELS.build(copy.deepcopy(cfg.model))


def _expect(build, key, value, valid):
    if valid:
        build()  # a documented valid value builds
        return
    try:
        build()
    except (ValueError, KeyError) as e:
        msg = str(e)
    else:
        pytest.fail(f'{key}={value!r} was accepted. If it is a documented valid value, add '
                    'it to VALID_* in tests/test_config_fuzz.py (and update the figures in '
                    'docs/errors.md); if not, mmtrs/utils/config_schema.py must refuse it.')
    assert key in msg, f'{key}={value!r}: the message does not name the key: {msg}'
    assert re.search(r'Fix: |use |set |check ', msg), f'{key}={value!r}: no fix in: {msg}'


@pytest.mark.parametrize('key,value,valid', QUANT_MUTATIONS, ids=map(_id, QUANT_MUTATIONS))
def test_quant_cfg_mutation(sgd_cfg, key, value, valid):
    from mmdet.registry import MODELS
    cfg = copy.deepcopy(sgd_cfg)
    cfg.merge_from_dict({f'model.quant_cfg.{key}': value})
    _expect(lambda: MODELS.build(cfg.model), f'quant_cfg.{key}', value, valid)


@pytest.mark.parametrize('key,value,valid', TRS_MUTATIONS, ids=map(_id, TRS_MUTATIONS))
def test_trs_optim_wrapper_mutation(trs_cfg_and_model, key, value, valid):
    cfg, model = trs_cfg_and_model
    cfg = copy.deepcopy(cfg)
    cfg.merge_from_dict({f'optim_wrapper.{key}': value})
    _expect(lambda: build_optim_wrapper(model, cfg.optim_wrapper), f'optim_wrapper.{key}',
            value, valid)


@pytest.fixture(scope='module')
def hook_cfgs():
    init_default_scope('mmdet')
    return {name: Config.fromfile(osp.join(ROOT, f'configs/demo/retinanet_r18_w4a4_{name}_demo.py'))
            for name in {c for c, _ in HOOK_CONFIGS}}


@pytest.mark.parametrize('cfg_name,key,value,valid', HOOK_MUTATIONS, ids=map(_id, HOOK_MUTATIONS))
def test_custom_hook_mutation(hook_cfgs, cfg_name, key, value, valid):
    from mmengine.registry import HOOKS
    cfg = copy.deepcopy(hook_cfgs[cfg_name])
    hook_type, arg = key.split('.')
    i = next(i for i, h in enumerate(cfg.custom_hooks) if h['type'] == hook_type)
    cfg.merge_from_dict({f'custom_hooks.{i}.{arg}': value})
    _expect(lambda: HOOKS.build(cfg.custom_hooks[i]), f'custom_hooks {key}', value, valid)


def test_every_key_has_a_schema_entry():
    """New keys cannot skip validation: every default key is declared, and back."""
    assert set(QUANT_CFG_SCHEMA.entries) == set(DEFAULT_QUANT_CFG)
    for sub in ('first_layer', 'last_layers'):
        spec = QUANT_CFG_SCHEMA.entries[sub]
        assert isinstance(spec, SubDict)
        assert set(DEFAULT_QUANT_CFG[sub]) <= set(spec.schema.entries), sub
    assert set(TRS_OPTIM_WRAPPER_SCHEMA.entries) == set(_trs_keys())
    # every argument of the fuzzed hooks is declared in the schemas its __init__s check
    per_weight, reg = 'custom_hooks <per-weight-state hook>', 'custom_hooks <regularizer hook>'
    checked_by = {
        'TransitionRateHook': ['custom_hooks TransitionRateHook'],
        'OscillationTrackingHook': ['custom_hooks OscillationTrackingHook', per_weight],
        'OscillationFreezingHook': ['custom_hooks OscillationFreezingHook',
                                    'custom_hooks OscillationTrackingHook', per_weight],
        'LTSFreezingHook': ['custom_hooks LTSFreezingHook', per_weight],
        'OscillationDampeningHook': [reg], 'BinRegularizationHook': [reg]}
    for _, hook in HOOK_CONFIGS:
        declared = set().union(*(SCHEMAS[n].entries for n in checked_by[hook]))
        assert {k.split('.')[1] for k in _hook_keys(hook)} == declared, hook


def test_docs_list_the_schema_and_the_fuzzer_figures():
    text = open(osp.join(ROOT, 'docs/errors.md')).read()
    for name, schema in SCHEMAS.items():
        for row in schema.table(name).splitlines():
            assert row in text, (f'docs/errors.md lacks the schema row {row} (print the '
                                 'table with python tools/config_schema_table.py)')
    muts = QUANT_MUTATIONS + TRS_MUTATIONS + [m[1:] for m in HOOK_MUTATIONS]
    valid = sum(ok for *_, ok in muts)
    line = (f'**{len(muts)} mutations tried: {len(muts) - valid} refused at build time '
            f'naming the key, {valid} documented valid values**')
    assert line in text, f'update docs/errors.md with: {line}'


# ---- mistakes that used to pass silently, with their messages ------------------------------------------

@pytest.mark.parametrize('key,value,match', [
    ('last_layer_names', 'retina_cls',
     r"quant_cfg\.last_layer_names='retina_cls'.*wrap it in a list: "
     r"quant_cfg\.last_layer_names=\['retina_cls'\]"),
    ('signed_act', 'neck', r"quant_cfg\.signed_act='neck'.*wrap it in a list"),
    ('unsigned_act', 'neck', r"quant_cfg\.unsigned_act='neck'.*wrap it in a list"),
    ('skip', 'fpn', r"quant_cfg\.skip='fpn'.*wrap it in a list"),
    ('init_mult', -3.0, r'quant_cfg\.init_mult=-3\.0 .*\(0, inf\).*positive finite'),
    ('init_mult', 0, r'quant_cfg\.init_mult=0 .*\(0, inf\)'),
    ('init_mult', '3', r"quant_cfg\.init_mult='3' "),
])
def test_issue_cases_are_refused(sgd_cfg, key, value, match):
    from mmdet.registry import MODELS
    cfg = copy.deepcopy(sgd_cfg)
    cfg.merge_from_dict({f'model.quant_cfg.{key}': value})
    with pytest.raises(ConfigSchemaError, match=match):
        MODELS.build(cfg.model)


def test_policy_with_no_layer_at_body_bits_names_the_keys(sgd_cfg):
    from mmdet.registry import MODELS
    cfg = copy.deepcopy(sgd_cfg)
    cfg.merge_from_dict({'model.quant_cfg.last_layer_names': ['conv']})
    # 'conv' is in the name of every conv of the demo RetinaNet (34) except the three
    # ResNet shortcuts 'layerN.0.downsample.0' and the final retina_cls / retina_reg:
    # those 5 stay at the body's W4A4, so this policy is allowed...
    model = MODELS.build(copy.deepcopy(cfg.model))
    body = {n for n, m in model.named_modules()
            if isinstance(m, QConv2d) and m.weight_quantizer.bits == 4}
    assert body == {f'backbone.layer{i}.0.downsample.0' for i in (2, 3, 4)} | {
        'bbox_head.retina_cls', 'bbox_head.retina_reg'}
    # ...and once those are matched too, nothing is left at W4A4: refused
    cfg.merge_from_dict({'model.quant_cfg.last_layer_names': ['conv', 'downsample', 'retina']})
    with pytest.raises(ConfigSchemaError, match=r"no layer at the body's W4A4: of the 34 "
                       r'converted layers, 34 match quant_cfg\.last_layer_names .*'
                       r'quant_cfg\.last_layers'):
        MODELS.build(cfg.model)


def test_pattern_matching_no_module_is_refused(sgd_cfg):
    from mmdet.registry import MODELS
    cfg = copy.deepcopy(sgd_cfg)
    cfg.merge_from_dict({'model.quant_cfg.skip': [r'neck\.fpn_convs\.0', 'nekc']})
    with pytest.raises(ConfigSchemaError, match=r"quant_cfg\.skip\[1\]='nekc' matches no"):
        MODELS.build(cfg.model)


@pytest.mark.parametrize('init_mult', [-3.0, 0, NAN, INF, '3', None, True])
def test_qconv_built_directly_refuses_bad_init_mult(init_mult):
    """conv_cfg=dict(type='QConv2d', ...) bypasses quant_cfg: QConv2d/Quantizer refuse
    the value at construction (before, every scale silently fell back to 1.0)."""
    from mmdet.registry import MODELS
    with pytest.raises(ConfigSchemaError, match=r'head\.conv\.weight_quantizer\.init_mult='):
        QConv2d(3, 4, 3, init_mult=init_mult, name='head.conv')
    with pytest.raises(ConfigSchemaError, match=r'weight_quantizer\.init_mult='):
        MODELS.build(dict(type='QConv2d', in_channels=3, out_channels=4, kernel_size=3,
                          init_mult=init_mult))


def test_all_zero_batch_keeps_fallback_and_warns_once_naming_the_layer(monkeypatch):
    logged = []
    monkeypatch.setattr(quantizer_module, 'print_log',
                        lambda msg, logger=None, level=logging.INFO: logged.append(
                            (msg, level)))
    q = Quantizer(4, 'act', signed=False, name='neck.fpn_convs.0.conv.act_quantizer')
    q.train()
    out = q(torch.zeros(2, 3, 4, 4))
    assert float(q.scale) == 1.0 and torch.equal(out, torch.zeros(2, 3, 4, 4))
    q(torch.zeros(2, 3, 4, 4))  # initialised: no second message
    assert len(logged) == 1 and logged[0][1] == logging.WARNING
    assert 'neck.fpn_convs.0.conv.act_quantizer' in logged[0][0]
    # a normal batch: s = 3 std / sqrt(1 - 2/pi) (unsigned activation), no warning
    q2 = Quantizer(4, 'act', signed=False, name='x')
    q2.train()
    x = torch.tensor([0.0, 1.0, 2.0, 3.0])
    q2(x)
    std = math.sqrt(sum((v - 1.5) ** 2 for v in (0, 1, 2, 3)) / 3)
    assert float(q2.scale) == pytest.approx(3 * std / math.sqrt(1 - 2 / math.pi), rel=1e-6)
    assert len(logged) == 1


def test_non_finite_first_batch_is_refused_naming_the_layer():
    q = Quantizer(4, 'weight', name='backbone.conv1.weight_quantizer')
    q.train()
    with pytest.raises(FloatingPointError, match=r'backbone\.conv1\.weight_quantizer.*NaN'):
        q(torch.tensor([1.0, float('nan'), 2.0]))
