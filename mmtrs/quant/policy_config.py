"""The quantization policy's configuration, `model.quant_cfg`: its defaults, the
declared type and range of every key, and the rules that need the converted model.
Every key is documented in docs/quantization.md; a wrong one fails with a message
naming `quant_cfg.<key>` and the fix (mmtrs/utils/config_schema.py).
"""
import copy
import re

from ..utils.config_schema import (Bits, Bool, ConfigSchemaError, NameList, Number, OneOf,
                                   RegexList, Schema, Str, SubDict)
from .layers import FLOAT_LAYER_TYPES
from .quantizer import INIT_MULT_FIX

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
    # Quantized layers keep their float input x (which the activation quantizer keeps
    # anyway) for the backward pass, not x_q, and recompute x_q there: less memory, one
    # more quantizing pass per layer and step (QuantizedLayerMixin.forward; the gradients
    # are the same bit for bit). False keeps x_q.
    recompute_input=True,
)


_LAYER_KEYS = dict(
    w_bits=Bits(doc='weight bits (default 8)'),
    a_bits=Bits(nullable='float input', doc='activation bits (default 8)'),
    init_mult=Number(low=0, low_open=True, fix=INIT_MULT_FIX,
                     doc='scale-init multiplier (default: quant_cfg.init_mult)'),
)
#: precision dict of quant_cfg.last_layers
QUANT_LAYER_SCHEMA = Schema('layer', _LAYER_KEYS)
#: precision dict of quant_cfg.first_layer (its input is the image: mmtrs/quant/input_scale.py)
FIRST_LAYER_SCHEMA = Schema('first_layer', dict(
    _LAYER_KEYS,
    input_scale=OneOf('fixed', 'learned', doc="image-input scale: 'fixed' from the data "
                      "preprocessor's mean/std (default) or 'learned'",
                      fix="use 'fixed' or 'learned' (a_bits=None keeps the input float)"),
))


QUANT_CFG_SCHEMA = Schema('quant_cfg', dict(
    w_bits=Bits(doc='weight bits of the body'),
    a_bits=Bits(nullable='FP activations', doc='activation bits of the body'),
    first_layer=SubDict(FIRST_LAYER_SCHEMA, nullable='keep it FP',
                        doc='precision of the first conv under first_layer_scope'),
    last_layers=SubDict(QUANT_LAYER_SCHEMA, nullable='keep them FP',
                        doc='precision of the convs matched by last_layer_names'),
    last_layer_names=RegexList(doc='final prediction convs; a pattern that matches no '
                                   'module is refused unless it is the default'),
    first_layer_scope=Str(nullable='anywhere in the model',
                          doc="module that holds the first layer; '' = anywhere"),
    quant_types=NameList(FLOAT_LAYER_TYPES, non_empty=True,
                         doc='module classes converted'),
    skip=RegexList(doc='module names kept FP; each pattern must match a module'),
    act_signed=OneOf(True, False, 'auto', doc="activation signedness ('auto': from the "
                     'first batch)'),
    signed_act=RegexList(doc='forced signed activations; each pattern must match a module'),
    unsigned_act=RegexList(doc='forced unsigned activations; each pattern must match a '
                               'module'),
    learn_weight_scale=Bool(doc='False under TR scheduling'),
    learn_act_scale=Bool(doc='activation scales learn (SGD and SGDT)'),
    post_scale=Bool(doc='learnable post-scale where no norm follows'),
    init_mult=Number(low=0, low_open=True, fix=INIT_MULT_FIX,
                     doc='scale-init multiplier of the body'),
    max_float_share=Number(low=0, high=1, nullable='no check', example='0.10',
                           doc="largest share of the backbone's weights left float"),
    recompute_input=Bool(doc='recompute x_q in the backward pass instead of keeping it'),
))


def check_policy_result(cfg, converted, model):
    """Rules of the policy that need the converted model (called by quantize_model):
    a pattern that matches no module, a first-layer scope that names none, a policy
    that leaves no layer at the body's bit-width.

    Args:
        cfg (dict): the merged quant_cfg.
        converted (list): (name, quantized layer) pairs.
        model: the converted model.
    """
    names = [n for n, _ in model.named_modules()]
    examples = [n for n, _ in converted][::max(1, len(converted) // 3)][:3] or names[1:4]
    defaults = DEFAULT_QUANT_CFG
    for key in ('last_layer_names', 'skip', 'signed_act', 'unsigned_act'):
        if key == 'last_layer_names' and list(cfg[key]) == list(defaults[key]):
            continue  # the default covers many heads; a given model has some of them
        for i, pattern in enumerate(cfg[key]):
            if not any(re.search(pattern, n) for n in names):
                raise ConfigSchemaError(
                    f'quant_cfg.{key}[{i}]={pattern!r} matches no module of the model, so it '
                    f'has no effect (misspelt?). Fix: correct or remove it; module names '
                    f'look like {examples!r}.')
    scope = cfg['first_layer_scope']
    # (the default 'backbone' may be absent from a bare model: then there is no first layer)
    if scope and scope != defaults['first_layer_scope'] and cfg['first_layer'] is not None \
            and not any(n.startswith(scope + '.') for n in names):
        raise ConfigSchemaError(
            f'quant_cfg.first_layer_scope={scope!r} names no module of the model, so no '
            f'layer gets quant_cfg.first_layer. Fix: use the name of the module holding the '
            f"first conv (e.g. 'backbone'), or '' to take the model's first conv.")
    w_bits, a_bits = cfg['w_bits'], cfg['a_bits']

    def at_body(q):
        a = None if q.act_quantizer is None else q.act_quantizer.bits
        return q.weight_quantizer.bits == w_bits and a == a_bits

    if converted and not any(at_body(q) for _, q in converted):
        last = [n for n, _ in converted if any(re.search(p, n) for p in cfg['last_layer_names'])]
        raise ConfigSchemaError(
            f'quant_cfg leaves no layer at the body\'s W{w_bits}A{a_bits}: of the '
            f'{len(converted)} converted layers, {len(last)} match quant_cfg.last_layer_names '
            f'(-> quant_cfg.last_layers={cfg["last_layers"]!r}) and the first layer gets '
            f'quant_cfg.first_layer={cfg["first_layer"]!r}; quant_cfg.skip={cfg["skip"]!r} '
            'keeps others FP. Fix: narrow quant_cfg.last_layer_names / quant_cfg.skip to the '
            'layers meant (anchored regexes such as r"(^|\\.)retina_cls$").')


def build_quant_cfg(quant_cfg=None):
    """DEFAULT_QUANT_CFG updated by `quant_cfg`, every key checked against its declared
    schema (types, ranges, enums: QUANT_CFG_SCHEMA)."""
    cfg = copy.deepcopy(DEFAULT_QUANT_CFG)
    QUANT_CFG_SCHEMA.check(dict(quant_cfg or {}), 'quant_cfg', allow_unknown=False)
    cfg.update(copy.deepcopy(dict(quant_cfg or {})))
    return cfg
