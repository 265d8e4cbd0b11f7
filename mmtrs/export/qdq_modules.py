"""Export-time stand-ins for QConv2d / QLinear that trace to ONNX QDQ operators.

Each stand-in's eager forward computes exactly what its ONNX operators compute (ONNX
semantics, not the training code's), and its `symbolic` emits them through torch's
TorchScript-based ONNX exporter:

    activation  x -> QuantizeLinear(s_a/gamma_a, zp 0) -> Clip[alpha, beta] -> DequantizeLinear
    signed binary activation (sign with sign(0) = +1, gamma 1, paper Sec. 4.3):
                x -> GreaterOrEqual(x, 0) -> Where(+1, -1) (int8) -> DequantizeLinear(s_a)
    weight      int8 initializer of levels w_d -> DequantizeLinear(s_w [* p] / gamma_w)

`torch.fake_quantize_per_tensor_affine` is not used: its ONNX exporter accepts only
8-bit ranges. QuantizeLinear rounds half to even like torch.round; it computes
round(x / scale) while the training quantizer computes round(x * (gamma / s)), so a
value within an ulp of a rounding boundary can land one level apart (measured by
tools/verify_export.py). The zero point is 0 (Eq. 13 has no offset); unsigned
activations use uint8 containers, signed ones int8. Weight DequantizeLinear has no zero
point input, so the int4 variant only changes the initializer's type.
"""
import torch
from torch import nn
from torch.nn import functional as F


def _const(g, value, dtype):
    return g.op('Constant', value_t=torch.tensor(value, dtype=dtype))


class ActQDQ(torch.autograd.Function):
    """QuantizeLinear -> Clip -> DequantizeLinear with zero point 0."""

    @staticmethod
    def forward(ctx, x, scale, alpha, beta, signed):
        s = torch.tensor(scale, dtype=x.dtype)
        return torch.clamp(torch.round(x / s), alpha, beta) * s

    @staticmethod
    def symbolic(g, x, scale, alpha, beta, signed):
        dtype = torch.int8 if signed else torch.uint8
        s = _const(g, scale, torch.float32)
        zp = _const(g, 0, dtype)
        q = g.op('QuantizeLinear', x, s, zp)
        levels = g.op('Clip', q, _const(g, alpha, dtype), _const(g, beta, dtype))
        return g.op('DequantizeLinear', levels, s, zp)


class SignActQDQ(torch.autograd.Function):
    """Signed binary activation: levels sign(x) in {-1, +1} (sign(0) = +1) as int8."""

    @staticmethod
    def forward(ctx, x, scale, alpha, beta, signed):
        return torch.where(x >= 0, 1.0, -1.0).to(x.dtype) * torch.tensor(scale, dtype=x.dtype)

    @staticmethod
    def symbolic(g, x, scale, alpha, beta, signed):
        nonneg = g.op('GreaterOrEqual', x, _const(g, 0.0, torch.float32))
        levels = g.op('Where', nonneg, _const(g, 1, torch.int8), _const(g, -1, torch.int8))
        return g.op('DequantizeLinear', levels, _const(g, scale, torch.float32),
                    _const(g, 0, torch.int8))


class WeightDQ(torch.autograd.Function):
    """DequantizeLinear of an integer weight initializer (no zero point input)."""

    @staticmethod
    def forward(ctx, levels, scale):
        return levels.float() * torch.tensor(scale, dtype=torch.float32)

    @staticmethod
    def symbolic(g, levels, scale):
        return g.op('DequantizeLinear', levels, _const(g, scale, torch.float32))


#: the name suffix of every weight-level initializer in exported graphs
LEVELS_SUFFIX = '.weight_levels'


class QDQLayer(nn.Module):
    """A quantized layer (QConv2d or QLinear) as integer weights + QDQ operators."""

    def __init__(self, layer):
        super().__init__()
        m = layer.module
        self.name = layer.name
        self.kind = layer.kind
        self.register_buffer('weight_levels', layer.weight_levels())
        self.w_scale = float(layer.weight_dq_scale())
        self.bias = None if m.bias is None else nn.Parameter(m.bias.detach().clone(),
                                                             requires_grad=False)
        if self.kind == 'conv2d':
            self.conv_args = (m.stride, m.padding, m.dilation, m.groups)
        self.act = None
        if layer.aq is not None:
            alpha, beta, _ = layer.aq.qrange
            fn = SignActQDQ if layer.aq.use_sign else ActQDQ
            self.act = (fn, float(layer.act_dq_scale()), alpha, beta, layer.aq.signed)

    def forward(self, x):
        if self.act is not None:
            fn, scale, alpha, beta, signed = self.act
            x = fn.apply(x, scale, alpha, beta, signed)
        w = WeightDQ.apply(self.weight_levels, self.w_scale)
        if self.kind == 'conv2d':
            return F.conv2d(x, w, self.bias, *self.conv_args)
        return F.linear(x, w, self.bias)


class FloatLayer(nn.Module):
    """The same layer as a plain float op with its latent weight (the FP32 reference
    graph: same network, no quantization)."""

    def __init__(self, layer):
        super().__init__()
        m = layer.module
        self.kind = layer.kind
        self.weight = nn.Parameter(m.weight.detach().clone(), requires_grad=False)
        self.bias = None if m.bias is None else nn.Parameter(m.bias.detach().clone(),
                                                             requires_grad=False)
        if self.kind == 'conv2d':
            self.conv_args = (m.stride, m.padding, m.dilation, m.groups)

    def forward(self, x):
        if self.kind == 'conv2d':
            return F.conv2d(x, self.weight, self.bias, *self.conv_args)
        return F.linear(x, self.weight, self.bias)
