"""QConv2d: a drop-in nn.Conv2d with a weight and an activation quantizer (Eq. 13)."""
import torch
from torch import nn
from mmdet.registry import MODELS

from .quantizer import Quantizer


@MODELS.register_module()
class QConv2d(nn.Conv2d):
    """Conv2d computing on quantized weights and inputs.

    forward:  y = conv(x_q, w_q) * s_w * s_a [* p] + b

    x_q, w_q are the normalized outputs of Eq. 13 (fixed-point values in [-1, 1]).
    Multiplying by s_w * s_a is the de-normalization h of Eq. 3: it makes QConv2d
    replace an FP conv without changing its output scale, so FP checkpoints (and the
    BN running statistics that follow) stay valid. Where a norm layer follows, the
    factor is irrelevant in training (scale invariance, paper Sec. 3); where none follows
    (RetinaNet's stock FPN and head convs, the final cls/reg convs) it is required. The
    factor is applied to the (small) weight tensor rather than the output: same math,
    less work, and it is done inside the weight quantizer's fused pass (`out_scale`).
    `post_scale=True` adds the paper's optional learnable post-scale p.

    Args beyond nn.Conv2d:
        w_bits, a_bits: bit-widths (1 = binary). a_bits=None keeps FP inputs.
        a_signed: True, False or 'auto' (decided from the first training batch).
        learn_weight_scale: False under TR scheduling (paper footnote 2).
        learn_act_scale: activation scales learn in both SGD and SGDT.
        post_scale: add a learnable scalar post-scale (init 1).
        init_mult: scale-init multiplier, see Quantizer.
        name: module path for error messages.
    """

    def __init__(self, *args, w_bits=4, a_bits=4, a_signed='auto', learn_weight_scale=True,
                 learn_act_scale=True, post_scale=False, init_mult=3.0, name='', **kwargs):
        super().__init__(*args, **kwargs)
        self.weight_quantizer = Quantizer(w_bits, 'weight', learn_scale=learn_weight_scale,
                                          init_mult=init_mult, name=f'{name}.weight_quantizer')
        self.act_quantizer = None if a_bits is None else Quantizer(
            a_bits, 'act', signed=a_signed, learn_scale=learn_act_scale,
            init_mult=init_mult, name=f'{name}.act_quantizer')
        self.post_scale = nn.Parameter(torch.ones(())) if post_scale else None

    @classmethod
    def from_conv(cls, conv, **qkwargs):
        """Build a QConv2d sharing `conv`'s weight/bias Parameters (keys unchanged)."""
        q = cls(conv.in_channels, conv.out_channels, conv.kernel_size, stride=conv.stride,
                padding=conv.padding, dilation=conv.dilation, groups=conv.groups,
                bias=conv.bias is not None, padding_mode=conv.padding_mode,
                device=conv.weight.device, dtype=conv.weight.dtype, **qkwargs)
        q.weight = conv.weight
        q.bias = conv.bias
        if not conv.weight.requires_grad:
            # a frozen conv (e.g. ResNet frozen_stages, frozen in the backbone's
            # __init__) keeps its scales frozen too, and before DDP wraps the model:
            # DDP fixes the set of parameters that get gradients when it is built
            for quantizer in (q.weight_quantizer, q.act_quantizer):
                if quantizer is not None:
                    quantizer.scale.requires_grad_(False)
        return q

    def denorm_factor(self):
        """h of Eq. 3: s_w * s_a (* learnable post-scale)."""
        f = self.weight_quantizer.denorm_scale()
        if self.act_quantizer is not None:
            f = f * self.act_quantizer.denorm_scale()
        if self.post_scale is not None:
            f = f * self.post_scale
        return f

    def forward(self, x):
        xq = x if self.act_quantizer is None else self.act_quantizer(x)
        # w_q * h computed in the weight quantizer's pass (one pass over the weights
        # each way instead of three: see _QuantizeFn); same values as `w_q * h`
        wq_h = self.weight_quantizer(self.weight, out_scale=self.denorm_factor)
        return self._conv_forward(xq, wq_h, self.bias)
