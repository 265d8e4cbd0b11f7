"""The integer form of every quantized layer of a model (paper Eq. 13 and Eq. 3).

A quantized layer computes (QConv2d / QLinear):

    y = op(x_q, w_q * s_w * s_a [* p]) + b,    x_q = x_d / gamma_a,  w_q = w_d / gamma_w

with integer levels x_d, w_d. Moving the scales onto the operands gives the deployable
form, which only re-associates the products:

    y = op(x_d * (s_a / gamma_a), w_d * (s_w * p / gamma_w)) + b

so the weight is stored as its integer levels w_d with the dequantization scale
s_w * p / gamma_w, and the activation as levels x_d with scale s_a / gamma_a. The
de-normalization h of Eq. 3 is thereby folded into the two scales. `QuantLayer` reads
those numbers from a layer; `collect_quant_layers` finds the layers of a model and
refuses what the export cannot represent.
"""
from dataclasses import dataclass

import torch
from torch import nn

from ..quant.qconv import QConv2d
from ..quant.quantizer import Quantizer
from .errors import ExportError

try:  # the quantized Linear (transformer backbones); absent in older checkouts
    from ..quant.qlinear import QLinear
except ImportError:  # pragma: no cover
    QLinear = None

#: exact classes the exporters understand (a subclass may compute something else)
SUPPORTED_TYPES = tuple(t for t in (QConv2d, QLinear) if t is not None)


@dataclass
class QuantLayer:
    """One quantized layer's integer description (everything a deployment needs)."""
    name: str
    module: nn.Module

    @property
    def kind(self):
        return 'conv2d' if isinstance(self.module, QConv2d) else 'linear'

    @property
    def wq(self):
        return self.module.weight_quantizer

    @property
    def aq(self):
        return self.module.act_quantizer

    def weight_levels(self):
        """w_d = round(clip(gamma_w * w / s_w, alpha, beta)) as int8 (sign levels
        {-1, +1} for binary weights): `Quantizer.discretize`, bit for bit."""
        return self.wq.discretize(self.module.weight.detach()).to(torch.int8)

    def weight_dq_scale(self):
        """s_w [* p] / gamma_w (float32): the weight's dequantization scale."""
        s = self.wq.scale.detach().float()
        if self.module.post_scale is not None:
            s = s * self.module.post_scale.detach().float()
        return s / self.wq.qrange[2]

    def act_dq_scale(self):
        """s_a / gamma_a (float32), or None for a float input."""
        if self.aq is None:
            return None
        return self.aq.scale.detach().float() / self.aq.qrange[2]

    def manifest(self):
        """Plain-JSON description (the packed checkpoint's manifest.json rows)."""
        w_alpha, w_beta, w_gamma = self.wq.qrange
        row = dict(
            kind=self.kind, weight_shape=list(self.module.weight.shape),
            w_bits=self.wq.bits, w_signed=True, w_binary=self.wq.use_sign,
            w_range=[w_alpha, w_beta], w_gamma=w_gamma,
            s_w=float(self.wq.scale.detach()), w_dq_scale=float(self.weight_dq_scale()),
            post_scale=None if self.module.post_scale is None
            else float(self.module.post_scale.detach()), bias=self.module.bias is not None,
            a_bits=None, a_signed=None, a_binary=None, a_range=None, a_gamma=None,
            s_a=None, a_dq_scale=None)
        if self.aq is not None:
            a_alpha, a_beta, a_gamma = self.aq.qrange
            row.update(a_bits=self.aq.bits, a_signed=self.aq.signed,
                       a_binary=self.aq.use_sign, a_range=[a_alpha, a_beta],
                       a_gamma=a_gamma, s_a=float(self.aq.scale.detach()),
                       a_dq_scale=float(self.act_dq_scale()))
        return row


def _quantizers(module):
    return [(n, q) for n, q in module.named_children() if isinstance(q, Quantizer)]


def collect_quant_layers(model):
    """[QuantLayer] of `model` in module order.

    Raises ExportError (one line, naming the layer) for: a module that owns quantizers
    but is not a supported layer type, a conv with a padding mode other than zeros, a
    quantizer that was never initialised, or a model with no quantized layer at all.
    """
    model = getattr(model, 'module', model)
    layers = []
    for name, m in model.named_modules():
        if type(m) in SUPPORTED_TYPES:
            if isinstance(m, QConv2d) and m.padding_mode != 'zeros':
                raise ExportError(
                    f'layer `{name}`: QConv2d with padding_mode={m.padding_mode!r} is not '
                    "supported by the export (only 'zeros').")
            layers.append(QuantLayer(name, m))
        elif _quantizers(m):
            supported = ', '.join(t.__name__ for t in SUPPORTED_TYPES)
            raise ExportError(
                f'layer `{name}` ({type(m).__name__}) holds quantizers but is not a layer '
                f'type the export supports ({supported}); keep it float with '
                f'quant_cfg.skip, or add an exporter for it in mmtrs/export/.')
    if not layers:
        raise ExportError('the model has no quantized layer (QConv2d/QLinear): export '
                          "needs a quantized config (model.type='QuantizedDetector').")
    for layer in layers:
        for qname, q in _quantizers(layer.module):
            if not q.is_initialized:
                raise ExportError(
                    f'quantizer `{layer.name}.{qname}` was never initialised '
                    f'(`{layer.name}.{qname}.initialized` = 0): its scale is a '
                    'placeholder. Export a checkpoint written after at least one QAT '
                    'training step, or calibrate it (tools/test.py --calibrate N).')
    return layers
