"""QLinear: a drop-in nn.Linear with a weight and an activation quantizer (Eq. 13).

The Linear counterpart of `QConv2d` (qconv.py), for backbones whose weights live in
`nn.Linear` layers (Swin, ViT/DeiT: the attention projections and the MLPs). It has
the same attributes (`weight_quantizer`, `act_quantizer`, `post_scale`,
`denorm_factor()`), so the TR counter, TR scheduling, resume and every other tool that
works on quantized layers treats both alike (`mmtrs.quant.quantized_layers`).
"""
from torch import nn
from torch.nn import functional as F
from mmdet.registry import MODELS

from .quantized_layer import QuantizedLayerMixin


@MODELS.register_module()
class QLinear(QuantizedLayerMixin, nn.Linear):
    """Linear layer computing on quantized weights and inputs.

    forward:  y = linear(x_q, w_q * s_w * s_a [* p]) + b

    x_q, w_q are the normalized outputs of Eq. 13 (fixed-point values in [-1, 1]); the
    factor s_w * s_a (* p) is the de-normalization h of Eq. 3, applied to the weight
    exactly as in QConv2d, so a QLinear replaces an FP linear without changing its
    output scale and FP checkpoints stay valid. One scalar scale per quantizer (per
    layer), as for convs.

    Activations: the input of a transformer's linear layers is a LayerNorm output (qkv,
    fc1), a GELU output (fc2) or an attention output (proj), all of which take negative
    values. With a_signed='auto' the first training batch decides (negative input seen
    -> signed quantizer); an unsigned quantizer that later sees a negative input raises
    NegativeInputError instead of clipping it (see Quantizer).

    Args beyond nn.Linear: as QConv2d (w_bits, a_bits, a_signed, learn_weight_scale,
    learn_act_scale, post_scale, init_mult, name, recompute_input).
    """

    def __init__(self, in_features, out_features, bias=True, device=None, dtype=None,
                 w_bits=4, a_bits=4, a_signed='auto', learn_weight_scale=True,
                 learn_act_scale=True, post_scale=False, init_mult=3.0, name='',
                 recompute_input=True):
        super().__init__(in_features, out_features, bias=bias, device=device, dtype=dtype)
        self._init_quantizers(w_bits, a_bits, a_signed, learn_weight_scale, learn_act_scale,
                              post_scale, init_mult, name, recompute_input)

    @classmethod
    def from_linear(cls, linear, **qkwargs):
        """Build a QLinear sharing `linear`'s weight/bias Parameters (keys unchanged)."""
        q = cls(linear.in_features, linear.out_features, bias=linear.bias is not None,
                device=linear.weight.device, dtype=linear.weight.dtype, **qkwargs)
        return q._adopt(linear)

    def float_op(self, xq, wq):
        return F.linear(xq, wq, self.bias)
