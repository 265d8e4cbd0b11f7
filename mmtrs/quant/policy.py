"""Model-level quantization policy: which convs and linears become QConv2d / QLinear, at
which precision, and a coverage report of what stayed float.

The policy works on module names and types only, so it applies unchanged to any
backbone/neck/head MMDetection builds (a new backbone needs no quantization keys).
"""
import re

from mmengine.logging import print_log
from torch import nn

from .coverage import Coverage, check_float_share, conv_kind_counts
from .input_scale import fix_input_scale
from .layers import FLOAT_LAYER_TYPES, QUANT_LAYER_TYPES
from .policy_config import build_quant_cfg, check_policy_result

#: float class -> the converter that builds its quantized replacement
_CONVERTERS = {cls: v[2] for v in QUANT_LAYER_TYPES.values() for cls in v[0]}


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


def _plan(model, cfg):
    """The policy's decision for each layer of a converted type: (first layer's name,
    [(name, layer, precision dict)] to convert, {name: why it stays float})."""
    types = tuple(c for t in cfg['quant_types'] for c in FLOAT_LAYER_TYPES[t])
    first_name = None
    scope = cfg['first_layer_scope']
    for name, m in model.named_modules():
        if isinstance(m, types) and (not scope or name.startswith(scope + '.')):
            first_name = name
            break
    # why a layer of a converted type stays float (for the coverage report)
    reasons = {n: 'matched by quant_cfg.skip' for n, m in model.named_modules()
               if type(m) in types and _match(n, cfg['skip'])}
    plan = []
    for name, layer in model.named_modules():
        if type(layer) not in types or _match(name, cfg['skip']):
            continue
        if name == first_name:
            prec, key = cfg['first_layer'], 'first_layer'
        elif _match(name, cfg['last_layer_names']):
            prec, key = cfg['last_layers'], 'last_layers'
        else:
            prec = dict(w_bits=cfg['w_bits'], a_bits=cfg['a_bits'])
        if prec is None:
            reasons[name] = f'quant_cfg.{key}=None'
        else:
            plan.append((name, layer, prec))
    return first_name, plan, reasons


def policy_layers(model, quant_cfg=None):
    """The (name, float layer) pairs `quantize_model` would convert, without converting
    them: the FP model's counterparts of the quantized layers (an FP reference can then
    treat exactly those weights as QAT treats the quantized ones)."""
    return [(name, layer) for name, layer, _ in _plan(model, build_quant_cfg(quant_cfg))[1]]


def quantize_model(model, quant_cfg=None):
    """Replace convs and linears of `model` in place by QConv2d / QLinear according to
    the policy, log the coverage report and enforce `max_float_share`.

    Returns the list of (name, quantized layer). Parameter names are unchanged, so FP
    checkpoints load with every FP tensor used.
    """
    cfg = build_quant_cfg(quant_cfg)
    first_name, plan, reasons = _plan(model, cfg)
    converted = []
    for name, conv, prec in plan:
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
            init_mult=prec.get('init_mult', cfg['init_mult']), name=name,
            recompute_input=cfg['recompute_input'])
        if name == first_name and q.act_quantizer is not None and \
                prec.get('input_scale', 'fixed') == 'fixed':
            fix_input_scale(q.act_quantizer, getattr(model, 'data_preprocessor', None))
        setattr(parent, attr, q)
        converted.append((name, q))
    if not converted:
        raise ValueError('quant_cfg converted no layer: check quant_cfg.quant_types and '
                         'quant_cfg.skip.')
    cov = Coverage(model, {v[1]: t for t, v in QUANT_LAYER_TYPES.items()}, reasons,
                   supported=FLOAT_LAYER_TYPES, enabled=cfg['quant_types'])
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

