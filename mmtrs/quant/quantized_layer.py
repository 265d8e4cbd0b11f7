"""What every quantized layer shares (QConv2d, QLinear): a weight and an activation
quantizer of Eq. 13, the de-normalization h of Eq. 3, and adopting an FP layer's
parameters. A layer class mixes this in before its torch base class and only says how
it applies its quantized weight (conv, linear)."""
import torch
from torch import nn

from .quantizer import Quantizer


class QuantizedLayerMixin:
    """Quantizers and de-normalization of one quantized layer.

    x_q, w_q are the normalized outputs of Eq. 13 (fixed-point values in [-1, 1]).
    Multiplying w_q by h = s_w * s_a (* p) is the de-normalization of Eq. 3: the layer
    replaces an FP layer without changing its output scale, so FP checkpoints (and the
    norm statistics that follow) stay valid. Where a norm layer follows, the factor is
    irrelevant in training (scale invariance, paper Sec. 3); where none follows it is
    required. It is applied to the (small) weight tensor, inside the weight quantizer's
    fused pass (`out_scale`), rather than to the output: same math, less work.
    """

    def _init_quantizers(self, w_bits, a_bits, a_signed, learn_weight_scale,
                         learn_act_scale, post_scale, init_mult, name,
                         recompute_input=True):
        self.recompute_input = recompute_input
        self.weight_quantizer = Quantizer(w_bits, 'weight', learn_scale=learn_weight_scale,
                                          init_mult=init_mult, name=f'{name}.weight_quantizer')
        self.act_quantizer = None if a_bits is None else Quantizer(
            a_bits, 'act', signed=a_signed, learn_scale=learn_act_scale,
            init_mult=init_mult, name=f'{name}.act_quantizer')
        self.post_scale = nn.Parameter(torch.ones(())) if post_scale else None

    def _adopt(self, fp_layer):
        """Share `fp_layer`'s weight/bias Parameters (state-dict keys unchanged)."""
        self.weight = fp_layer.weight
        self.bias = fp_layer.bias
        if not fp_layer.weight.requires_grad:
            # a frozen layer (e.g. ResNet/Swin frozen_stages, frozen in the backbone's
            # __init__) keeps its scales frozen too, and before DDP wraps the model:
            # DDP fixes the set of parameters that get gradients when it is built
            for quantizer in (self.weight_quantizer, self.act_quantizer):
                if quantizer is not None:
                    quantizer.scale.requires_grad_(False)
        return self

    def denorm_factors(self):
        """The factors of h (Eq. 3) as the weight quantizer's `out_scale` takes them:
        s_w and s_a, each with its LSQ gradient scale, (and the learnable post-scale)."""
        factors = [self.weight_quantizer.denorm_term()]
        if self.act_quantizer is not None:
            factors.append(self.act_quantizer.denorm_term())
        if self.post_scale is not None:
            factors.append((self.post_scale, None))
        return factors

    def denorm_factor(self):
        """h of Eq. 3: s_w * s_a (* learnable post-scale), as a tensor with autograd
        (the value the forward pass uses; `denorm_factors` is its fused form)."""
        f = self.weight_quantizer.denorm_scale()
        if self.act_quantizer is not None:
            f = f * self.act_quantizer.denorm_scale()
        if self.post_scale is not None:
            f = f * self.post_scale
        return f

    def quantized_input_and_weight(self, x):
        """(x_q, w_q * h): the layer's input and weight as the layer computes with them."""
        xq = x if self.act_quantizer is None else self.act_quantizer(x)
        return xq, self.weight_quantizer(self.weight, out_scale=self.denorm_factors)

    def float_op(self, xq, wq):
        """The layer's float op (conv, linear) on a quantized input and weight."""
        raise NotImplementedError

    def forward(self, x):
        """float_op(x_q, w_q * h): the layer's op on its quantized input and weight.

        With `recompute_input` (and a quantized input, under autograd), the op's autograd
        node does not keep x_q for its backward pass but recomputes it there from x,
        which the activation quantizer's node keeps anyway: one activation-sized buffer
        less per layer between forward and backward, for one more quantizing pass
        (figures in docs/results.md). The recomputed x_q is bit-identical, so are the
        gradients. Not for double backward (create_graph): the recomputed x_q has no
        graph.
        """
        xq, wq = self.quantized_input_and_weight(x)
        if not (self.recompute_input and xq is not x and torch.is_grad_enabled()):
            return self.float_op(xq, wq)
        # x_q's storage, told apart by address: the op may save a view of x_q (F.linear
        # on a 3-D input saves it flattened); the hook outlives this call, so it must
        # not hold x_q itself
        quantizer, storage = self.act_quantizer, [xq.untyped_storage().data_ptr()]

        def pack(t):
            if storage and t.untyped_storage().data_ptr() == storage[0]:
                return _RecomputedInput(quantizer, x, t)
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, _unpack):
            out = self.float_op(xq, wq)
        storage.clear()
        return out


class _RecomputedInput:
    """What a quantized layer's op saves in place of x_q (or a view of it): the
    quantizer, its input and the view's geometry."""
    __slots__ = ('quantizer', 'x', 'view')

    def __init__(self, quantizer, x, t):
        self.quantizer, self.x = quantizer, x
        self.view = (t.size(), t.stride(), t.storage_offset())


def _unpack(saved):
    if isinstance(saved, _RecomputedInput):
        # the forward pass's x_q had this layout too: same code, same input
        return saved.quantizer.requantize(saved.x).as_strided(*saved.view)
    return saved
