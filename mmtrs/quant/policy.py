"""Model-level quantization policy: which convs and linears become QConv2d / QLinear, at
which precision, and a coverage report of what stayed float.

The policy works on module names and types only, so it applies unchanged to any
backbone/neck/head MMDetection builds (a new backbone needs no quantization keys).
"""
import copy
import re

from mmcv.cnn.bricks import wrappers as mmcv_wrappers
from mmengine.logging import print_log
from torch import nn

from .coverage import Coverage, check_float_share, conv_kind_counts
from .input_scale import fix_input_scale
from .qconv import QConv2d
from .qlinear import QLinear
from ..utils.config_schema import QUANT_CFG_SCHEMA, check_policy_result

#: Defaults of the quantization policy (every key documented in docs/quantization.md).
DEFAULT_QUANT_CFG = dict(
    w_bits=4,                 # weight bit-width of the quantized body (1 = binary)
    a_bits=4,                 # activation bit-width of the body
    # First conv of the backbone: dict(w_bits, a_bits[, init_mult][, input_scale]) or None
    # to keep it FP. 8-bit layers get a wide initial range (12 std): 3 std clips far too
    # much at 8 bits (measured in docs/results.md). `input_scale` of its (image) input:
    # 'fixed' = frozen, covering the data preprocessor's normalized pixel range, so no
    # gradient w.r.t. the image is computed (mmtrs/quant/input_scale.py; a first_layer
    # dict without the key gets 'fixed'); 'learned' = LSQ like the body. a_bits=None
    # keeps the input float.
    first_layer=dict(w_bits=8, a_bits=8, init_mult=12.0, input_scale='fixed'),
    # Final prediction convs (found by `last_layer_names`): same format.
    last_layers=dict(w_bits=8, a_bits=8, init_mult=12.0),
    last_layer_names=[r'(^|\.)(retina_cls|retina_reg|conv_cls|conv_reg|atss_cls|atss_reg|'
                      r'atss_centerness|conv_centerness|rpn_cls|rpn_reg|fc_cls|fc_reg)$'],
    first_layer_scope='backbone',   # first converted layer under it = "first layer"
    # module class names that are converted (exact types; see QUANT_LAYER_TYPES).
    # Linear covers transformer backbones (Swin: attention projections and MLPs).
    quant_types=('Conv2d', 'Linear'),
    skip=[],                        # regexes of module names left in FP
    # Activation signedness: 'auto' decides per layer from the first batch (negative
    # input seen -> signed); True/False forces it. `signed_act` / `unsigned_act` are
    # regexes that override it per module.
    act_signed='auto',
    signed_act=[],
    unsigned_act=[],
    learn_weight_scale=True,  # False under TR scheduling (paper footnote 2)
    learn_act_scale=True,
    post_scale=False,         # learnable post-scale on convs not followed by a norm layer
    # Scale init multiplier of the body (s = init_mult * std, see Quantizer): 3 is the
    # EWGS/LTS default for low-bit QAT. `first_layer` / `last_layers` carry their own.
    init_mult=3.0,
    # Coverage rule: conversion fails if more than this share of the backbone's weights
    # (params with >= 2 dims; the whole model if it has no `backbone`) stays float, so a
    # "W4A4" label cannot hide a float backbone (mmtrs/quant/coverage.py). None = no
    # check. 0.10: an 8-bit or FP first conv is < 1% of the backbones shipped here.
    max_float_share=0.10,
)

#: type name in quant_cfg.quant_types -> (float classes, quantized class, converter).
#: Exact classes only: a subclass may have another forward (nn.MultiheadAttention's
#: out_proj is an nn.Linear subclass whose forward is never called). mmcv's wrappers
#: (mmcv.cnn.Linear in mmcv's FFN, used by Swin) differ from torch's only for empty
#: inputs on torch < 1.6, so they convert like torch's.
QUANT_LAYER_TYPES = {
    'Conv2d': ((nn.Conv2d, mmcv_wrappers.Conv2d), QConv2d, QConv2d.from_conv),
    'Linear': ((nn.Linear, mmcv_wrappers.Linear), QLinear, QLinear.from_linear),
}
_CONV_TYPES = {t: v[0] for t, v in QUANT_LAYER_TYPES.items()}  # supported float types
_CONVERTERS = {cls: v[2] for v in QUANT_LAYER_TYPES.values() for cls in v[0]}
#: every quantized layer class (all share weight_quantizer / act_quantizer / weight)
QUANTIZED_LAYERS = tuple(v[1] for v in QUANT_LAYER_TYPES.values())


def _match(name, patterns):
    return any(re.search(p, name) for p in patterns)


_NORM_TYPES = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)


def _followed_by_norm(parent, attr):
    """Heuristic for the optional post-scale: mmcv ConvModule with norm, a norm layer
    next in an nn.Sequential (ResNet's downsample), or the ResNet naming convention
    convN -> normN/bnN."""
    if getattr(parent, 'with_norm', False) and attr == 'conv':
        return True
    if isinstance(parent, nn.Sequential) and attr.isdigit():
        nxt = int(attr) + 1
        return nxt < len(parent) and isinstance(parent[nxt], _NORM_TYPES)
    if attr.startswith('conv'):
        suffix = attr[4:]
        return any(hasattr(parent, p + suffix) for p in ('norm', 'bn'))
    return False


def build_quant_cfg(quant_cfg=None):
    """DEFAULT_QUANT_CFG updated by `quant_cfg`, every key checked against its declared
    schema (types, ranges, enums; mmtrs/utils/config_schema.py)."""
    cfg = copy.deepcopy(DEFAULT_QUANT_CFG)
    QUANT_CFG_SCHEMA.check(dict(quant_cfg or {}), 'quant_cfg', allow_unknown=False)
    cfg.update(copy.deepcopy(dict(quant_cfg or {})))
    return cfg


def quantize_model(model, quant_cfg=None):
    """Replace convs and linears of `model` in place by QConv2d / QLinear according to
    the policy, log the coverage report and enforce `max_float_share`.

    Returns the list of (name, quantized layer). Parameter names are unchanged, so FP
    checkpoints load with every FP tensor used.
    """
    cfg = build_quant_cfg(quant_cfg)
    types = tuple(c for t in cfg['quant_types'] for c in _CONV_TYPES[t])
    first_name = None
    scope = cfg['first_layer_scope']
    for name, m in model.named_modules():
        if isinstance(m, types) and (not scope or name.startswith(scope + '.')):
            first_name = name
            break
    targets = [(n, m) for n, m in model.named_modules()
               if type(m) in types and not _match(n, cfg['skip'])]
    converted = []
    # why a layer of a converted type stays float (for the coverage report)
    reasons = {n: 'matched by quant_cfg.skip' for n, m in model.named_modules()
               if type(m) in types and _match(n, cfg['skip'])}
    for name, conv in targets:
        if name == first_name:
            prec, key = cfg['first_layer'], 'first_layer'
        elif _match(name, cfg['last_layer_names']):
            prec, key = cfg['last_layers'], 'last_layers'
        else:
            prec = dict(w_bits=cfg['w_bits'], a_bits=cfg['a_bits'])
        if prec is None:
            reasons[name] = f'quant_cfg.{key}=None'
            continue
        parent_name, _, attr = name.rpartition('.')
        parent = model.get_submodule(parent_name) if parent_name else model
        if _match(name, cfg['signed_act']):
            a_signed = True
        elif _match(name, cfg['unsigned_act']):
            a_signed = False
        else:
            a_signed = cfg['act_signed']
        convert = _CONVERTERS[type(conv)]
        q = convert(
            conv, w_bits=prec.get('w_bits', 8), a_bits=prec.get('a_bits', 8),
            a_signed=a_signed, learn_weight_scale=cfg['learn_weight_scale'],
            learn_act_scale=cfg['learn_act_scale'],
            post_scale=cfg['post_scale'] and not _followed_by_norm(parent, attr),
            init_mult=prec.get('init_mult', cfg['init_mult']), name=name)
        if name == first_name and q.act_quantizer is not None and \
                prec.get('input_scale', 'fixed') == 'fixed':
            fix_input_scale(q.act_quantizer, getattr(model, 'data_preprocessor', None))
        setattr(parent, attr, q)
        converted.append((name, q))
    if not converted:
        raise ValueError('quant_cfg converted no layer: check quant_cfg.quant_types and '
                         'quant_cfg.skip.')
    cov = Coverage(model, {v[1]: t for t, v in QUANT_LAYER_TYPES.items()}, reasons,
                   supported=_CONV_TYPES, enabled=cfg['quant_types'])
    print_log(f'mmtrs: quantized {len(converted)} layers ({cov.summary_line()}); first '
              f'layer {first_name}: {cfg["first_layer"]}; last layers: '
              f'{cfg["last_layers"]}', logger='current')
    print_log('mmtrs: ' + cov.table(), logger='current')
    kinds = conv_kind_counts(converted)  # depthwise convs quantized at their own bits too
    print_log(f'mmtrs: quantized layers by kind: {kinds["depthwise"]} depthwise, '
              f'{kinds["pointwise"]} pointwise (1x1), {kinds["other"]} other',
              logger='current')
    check_float_share(cov, cfg['max_float_share'],
                      label=f'W{cfg["w_bits"]}A{cfg["a_bits"]}')
    check_policy_result(cfg, converted, model)  # cross-key rules that need the model
    return converted


def quantized_layers(model):
    """(name, layer) pairs of every quantized layer of a model (QConv2d, QLinear; the
    layers TR scheduling counts in Eq. 5). Unwraps DDP-style `.module`."""
    model = getattr(model, 'module', model)
    return [(n, m) for n, m in model.named_modules() if isinstance(m, QUANTIZED_LAYERS)]
