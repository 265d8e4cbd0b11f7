"""QConv2d: a drop-in nn.Conv2d with a weight and an activation quantizer (Eq. 13)."""
from torch import nn
from mmdet.registry import MODELS

from .quantized_layer import QuantizedLayerMixin


@MODELS.register_module()
class QConv2d(QuantizedLayerMixin, nn.Conv2d):
    """Conv2d computing on quantized weights and inputs.

    forward:  y = conv(x_q, w_q * s_w * s_a [* p]) + b

    The quantizers and the de-normalization h = s_w * s_a (Eq. 3) are described in
    `QuantizedLayerMixin` (quantized_layer.py): h matters where no norm layer follows
    (RetinaNet's stock FPN and head convs, the final cls/reg convs). `post_scale=True`
    adds the paper's optional learnable post-scale p.

    Args beyond nn.Conv2d:
        w_bits, a_bits: bit-widths (1 = binary). a_bits=None keeps FP inputs.
        a_signed: True, False or 'auto' (decided from the first training batch).
        learn_weight_scale: False under TR scheduling (paper footnote 2).
        learn_act_scale: activation scales learn in both SGD and SGDT.
        post_scale: add a learnable scalar post-scale (init 1).
        init_mult: scale-init multiplier, see Quantizer.
        name: module path for error messages.
        recompute_input: keep x, not x_q, for the backward pass and recompute x_q there
            (`QuantizedLayerMixin.forward`).
    """

    def __init__(self, *args, w_bits=4, a_bits=4, a_signed='auto', learn_weight_scale=True,
                 learn_act_scale=True, post_scale=False, init_mult=3.0, name='',
                 recompute_input=True, **kwargs):
        super().__init__(*args, **kwargs)
        self._init_quantizers(w_bits, a_bits, a_signed, learn_weight_scale, learn_act_scale,
                              post_scale, init_mult, name, recompute_input)

    @classmethod
    def from_conv(cls, conv, **qkwargs):
        """Build a QConv2d sharing `conv`'s weight/bias Parameters (keys unchanged)."""
        q = cls(conv.in_channels, conv.out_channels, conv.kernel_size, stride=conv.stride,
                padding=conv.padding, dilation=conv.dilation, groups=conv.groups,
                bias=conv.bias is not None, padding_mode=conv.padding_mode,
                device=conv.weight.device, dtype=conv.weight.dtype, **qkwargs)
        return q._adopt(conv)

    def float_op(self, xq, wq):
        return self._conv_forward(xq, wq, self.bias)
