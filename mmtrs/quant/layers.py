"""The quantized layer types and how to find them in a model.

Every quantized layer (QConv2d, QLinear) has `weight`, `weight_quantizer` and
`act_quantizer`; TR scheduling, the oscillation remedies and the export all work on the
list `quantized_layers(model)` returns.
"""
from mmcv.cnn.bricks import wrappers as mmcv_wrappers
from mmengine.model import is_model_wrapper
from torch import nn

from .qconv import QConv2d
from .qlinear import QLinear

#: type name in quant_cfg.quant_types -> (float classes, quantized class, converter).
#: Exact classes only: a subclass may have another forward (nn.MultiheadAttention's
#: out_proj is an nn.Linear subclass whose forward is never called). mmcv's wrappers
#: (mmcv.cnn.Linear in mmcv's FFN, used by Swin) differ from torch's only for empty
#: inputs on torch < 1.6, so they convert like torch's.
QUANT_LAYER_TYPES = {
    'Conv2d': ((nn.Conv2d, mmcv_wrappers.Conv2d), QConv2d, QConv2d.from_conv),
    'Linear': ((nn.Linear, mmcv_wrappers.Linear), QLinear, QLinear.from_linear),
}
#: type name -> the float classes the policy converts
FLOAT_LAYER_TYPES = {t: v[0] for t, v in QUANT_LAYER_TYPES.items()}
#: every quantized layer class
QUANTIZED_LAYERS = tuple(v[1] for v in QUANT_LAYER_TYPES.values())


def unwrap(model):
    """The model inside a DDP-style wrapper (MMEngine's model-wrapper registry)."""
    return model.module if is_model_wrapper(model) else model


def quantized_layers(model):
    """(name, layer) of every quantized layer of `model` (wrappers unwrapped), in
    module order: the layers whose weights TR scheduling counts in Eq. 5."""
    return [(n, m) for n, m in unwrap(model).named_modules()
            if isinstance(m, QUANTIZED_LAYERS)]


def trainable_quantized_layers(model, owner, fix=None):
    """The quantized layers whose weight is trained (frozen stages such as ResNet's
    `frozen_stages` are left out: their weights never change level).

    Args:
        model: the model, wrapped or not.
        owner (str): the component that needs them, named in the error.
        fix (str | None): what the user should do if there is none; default: use a
            quantized model.

    Returns:
        list of (name, layer); raises ValueError if it would be empty.
    """
    layers = [(n, m) for n, m in quantized_layers(model) if m.weight.requires_grad]
    if not layers:
        fix = fix or "use a quantized model (model.type='QuantizedDetector' with a quant_cfg)"
        raise ValueError(f'{owner} found no quantized layer (QConv2d, QLinear) to train '
                         f'in the model: {fix}.')
    return layers


def num_frozen(layer):
    """Number of the layer's weights held fixed by a weight-freezing remedy (its
    `frozen_weights`, attached by mmtrs.remedies.freezing; 0 without one). Frozen
    weights cannot transition, so they leave N of Eq. 5."""
    frozen = getattr(layer, 'frozen_weights', None)
    return frozen.count if frozen is not None else 0
