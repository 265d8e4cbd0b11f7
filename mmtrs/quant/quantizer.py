"""The quantizer of paper Eq. 13 (LSQ-style, no post-scaling inside the quantizer).

    x_d = round(clip(gamma * x / s, alpha, beta))     integer level ("discrete value")
    x_q = x_d / gamma                                  normalized quantized value

Backward: straight-through estimator for round/sign, LSQ gradient for the scale `s`
with LSQ's gradient scale 1/sqrt(N * beta). The de-normalization h (Eq. 3) is not done
here but by the layer that owns the quantizer (see `QConv2d`).
"""
import logging
import math

import numpy as np
import torch
from mmengine.logging import print_log
from torch import nn

from ..utils.config_schema import Number, Schema, check_bits

#: what every scale-init multiplier must be (quant_cfg.init_mult, first/last layers)
INIT_MULT_FIX = ('use a positive finite number such as 3.0 (the scale starts at '
                 'init_mult * std, Quantizer)')

#: keys of a quantizer built directly (conv_cfg=dict(type='QConv2d', ...))
QUANTIZER_SCHEMA = Schema('quantizer', dict(
    init_mult=Number(low=0, low_open=True, fix=INIT_MULT_FIX + '; set it through '
                     'quant_cfg.init_mult or QConv2d(init_mult=...)',
                     doc='scale-init multiplier'),
))


class NegativeInputError(RuntimeError):
    """An unsigned activation quantizer received negative input."""


def quant_range(bits, signed):
    """(alpha, beta, gamma) of Eq. 13 and the binary variants (paper Sec. 4.3)."""
    if bits == 1:
        return (-1, 1, 1) if signed else (0, 1, 1)
    if signed:
        return -2 ** (bits - 1), 2 ** (bits - 1) - 1, 2 ** (bits - 1)
    return 0, 2 ** bits - 1, 2 ** bits


def _levels_(v, use_sign):
    """Integer levels from already clipped values, in place where possible: round, or
    sign with sign(0) := +1 for binary weights (levels stay in {-1, 1})."""
    if use_sign:
        return torch.where(v >= 0, 1.0, -1.0).to(v.dtype)
    return v.round_()


try:  # the fused CPU kernels (mmtrs/quant/csrc), built by `pip install -e .`
    from . import _fused_quantize
except ImportError:  # not built (e.g. an isolated build without torch): ATen ops only
    _fused_quantize = None
if _fused_quantize is not None and getattr(_fused_quantize, 'INTERFACE', 1) != 2:
    # a build from older sources (an editable install whose C++ changed since)
    print_log('mmtrs: the compiled quantizer extension predates its sources and is not '
              'used (the ATen path is, slower); rebuild it: pip install -e . '
              '--no-build-isolation', logger='current', level=logging.WARNING)
    _fused_quantize = None


def fused_kernel_available():
    return _fused_quantize is not None


def _use_fused(x):
    return _fused_quantize is not None and x.device.type == 'cpu' and \
        x.dtype == torch.float32


def _lsq_term(v, g):
    """One factor of the output scale: v itself (g None), or the float32 value of LSQ's
    grad-scale form (v - v*g).detach() + v*g, which is not always exactly v."""
    return v if g is None else (v - v * g) + v * g


def _prefix_products(terms):
    """[t0, t0 * t1, (t0 * t1) * t2, ...]: the last is f; backward needs the others."""
    prefix = [terms[0]]
    for t in terms[1:]:
        prefix.append(prefix[-1] * t)
    return prefix


def _product_backward(grad_f, terms, prefix, scales, wanted):
    """Gradients of f = ((t0 * t1) * t2) ... w.r.t. each factor's parameter, as autograd
    gives them for that product of LSQ grad-scale forms: grad * (product of the others,
    in the order MulBackward forms it) * g. `prefix` = _prefix_products(terms)."""
    grads, d = [None] * len(terms), grad_f
    for k in range(len(terms) - 1, -1, -1):
        dk = d * prefix[k - 1] if k else d
        if k:
            d = d * terms[k]
        if wanted[k]:
            grads[k] = dk if scales[k] is None else dk * scales[k]
    return grads


class _QuantizeFn(torch.autograd.Function):
    """Eq. 13 with STE and LSQ scale gradient, in one autograd node, as ATen ops (GPUs,
    other dtypes, or the fused extension not built; float32 CPU tensors go through the
    extension's C++ node `_fused_quantize.quantize`, which computes the same values with
    one fused pass each way and no Python, bit for bit except the float order of its
    backward sums).

    This node runs on every activation of the network. Forward keeps the input and a
    1-byte mask of the clipped elements; backward needs one masked scale of the gradient
    and, for a learnable s, one dot product:
        grad_x = grad / s inside the clipping range, 0 outside (STE)
        grad_s = -sum_inside(grad * x) / s^2 * grad_factor = -dot(grad_x, x) / s * gf
    Arguments: x, the scale s, `params` = (alpha, beta, gamma, use_sign, grad_factor,
    low_clip, on_negative, h_scales), then the factors `*h` of an output scale.
    `low_clip=False` skips the lower-bound test where the input is known to be >= 0
    (unsigned activations whose sign is checked on the forward pass). `on_negative`, if
    given, is called with min(x) when the input has a negative element and returns the
    exception to raise (the sign check of unsigned activations).

    `h_scales` and the trailing 0-d tensors `*h` (none: no output scale) multiply the
    output by f = h[0]' * h[1]' * ..., each h[i]' = h[i], or LSQ's grad-scale form of it
    (s - s*g).detach() + s*g where h_scales[i] = g: the de-normalization factor h = s_w'
    * s_a' (* p) of Eq. 3 that QConv2d applies to its weights, without an autograd node
    for the scalar product: its gradient sum(grad * x_q) comes out of the backward pass,
    and each factor's gradient is that scalar times the others, as `_product_backward`
    says. A factor may be `s` itself (the weight scale in h); autograd then adds its two
    gradients, as it did for separate nodes.
    """

    @staticmethod
    def forward(ctx, x, s, params, *h):
        # the scalar settings travel as one tuple: autograd.Function.apply inspects every
        # argument, and this node runs twice per layer and step
        alpha, beta, gamma, use_sign, grad_factor, low_clip, on_negative, h_scales = params
        if on_negative is not None:  # the sign check: the path's only host sync
            x_min = float(x.min())
            if x_min < 0:
                raise on_negative(x_min)
        v = x * (gamma / s)
        outside = v > beta
        if low_clip:
            outside |= v < alpha
        out = _levels_(v.clamp_(alpha, beta), use_sign).div_(gamma)
        kept = (x, s, outside)
        if h:  # keep x_q for the gradient of f (weight-sized)
            ctx.h_scales = h_scales
            ctx.h_terms = [_lsq_term(t.detach(), g) for t, g in zip(h, h_scales)]
            ctx.h_prefix = _prefix_products(ctx.h_terms)
            f = ctx.h_prefix[-1]
            kept, out = kept + (out, f), out * f
        ctx.save_for_backward(*kept)
        ctx.grad_factor = grad_factor
        ctx.has_f = bool(h)
        return out

    @staticmethod
    def backward(ctx, grad):
        x, s, outside = ctx.saved_tensors[:3]
        grad_s = None
        if ctx.has_f:  # MulBackward of x_q * f
            xq, f = ctx.saved_tensors[3:]
            grad_f = torch.dot(grad.reshape(-1), xq.reshape(-1))
            grad = grad * f
        grad_x = (grad / s).masked_fill_(outside, 0)
        if ctx.needs_input_grad[1]:
            dot = torch.dot(grad_x.reshape(-1), x.reshape(-1))
            grad_s = (-dot / s * ctx.grad_factor).reshape(s.shape)
        grad_h = ()  # scales and factors of f are 0-d, as are the gradients built here
        if ctx.has_f:
            grad_h = _product_backward(grad_f, ctx.h_terms, ctx.h_prefix, ctx.h_scales,
                                       ctx.needs_input_grad[3:])
        if not ctx.needs_input_grad[0]:
            grad_x = None
        return (grad_x, grad_s, None, *grad_h)


class _LSQScaledIdentity(torch.autograd.Function):
    """s in the forward pass, gradient times g in the backward: the value and gradient
    of `(s - s * g).detach() + s * g` (LSQ's grad-scale trick) in one node. The value is
    computed with the same float32 operations, so it is bit-identical to that
    expression (which is not always exactly s)."""

    @staticmethod
    def forward(ctx, s, g):
        ctx.g = g
        s = s.detach()
        if s.device.type != 'cpu' or s.dtype != torch.float32:
            return (s - s * g) + s * g  # the same ops, without a host sync
        # on CPU as float32 host scalars: 1 read instead of 3 tensor ops
        sv, gv = np.float32(float(s)), np.float32(g)
        sg = sv * gv
        return s.new_tensor(float((sv - sg) + sg)).reshape(s.shape)

    @staticmethod
    def backward(ctx, grad):
        return grad * ctx.g, None


class Quantizer(nn.Module):
    """One quantizer of Eq. 13 with a single learnable (or frozen) scale.

    Args:
        bits (int): 2..8, or 1 for binary (sign for signed inputs, {0,1} for unsigned).
        kind (str): 'weight' or 'act'. Weights are always signed.
        signed (bool | 'auto'): activations only. 'auto' decides on the first training
            batch (negative values seen -> signed) and records the decision in a buffer,
            so it survives checkpoints. An unsigned activation quantizer that later sees a
            negative input raises NegativeInputError instead of clipping it silently.
        learn_scale (bool): False freezes `s` (required for weights under TR scheduling,
            paper footnote 2).
        init_mult (float): scale init on the first training batch: weights
            s = init_mult * std(w); unsigned activations s = init_mult * std(x) /
            sqrt(1 - 2/pi) (std of the underlying normal of a ReLU output); signed
            activations s = init_mult * std(x). Defaults follow the public EWGS/LTS code.
        check_sign (bool): check unsigned activation inputs for negatives every forward.
        name (str): module path, used in error messages.
    """

    def __init__(self, bits, kind='weight', signed=None, learn_scale=True, init_mult=3.0,
                 check_sign=True, name=''):
        super().__init__()
        if kind not in ('weight', 'act'):
            raise ValueError(f"kind must be 'weight' or 'act', got {kind!r}")
        self.bits = check_bits(bits, f'{name or kind} bits')
        self.kind = kind
        self.name = name
        if kind == 'weight':
            signed = True
        elif signed is None:
            signed = 'auto'
        if signed not in (True, False, 'auto'):
            raise ValueError(f"signed must be True, False or 'auto', got {signed!r}")
        self.auto_sign = signed == 'auto'
        # refused here, not at the first batch: a bad init_mult used to give every
        # scale a silent 1.0 (QConv2d can be built directly, bypassing quant_cfg)
        QUANTIZER_SCHEMA.check(dict(init_mult=init_mult), name.lstrip('.') or kind)
        self.init_mult = float(init_mult)
        self.check_sign = check_sign
        self._grad_factor = 1.0  # LSQ's 1/sqrt(N * beta), known after the first forward
        self._grad_factor_key = None  # the (N, beta) it was computed for
        self.scale = nn.Parameter(torch.ones(()), requires_grad=learn_scale)
        self.register_buffer('initialized', torch.zeros((), dtype=torch.uint8))
        self.register_buffer('signed_flag',
                             torch.tensor(1 if signed is True else 0, dtype=torch.uint8))
        # Eq. 5 in the forward pass (set by TransitionCounter, weights only): the int8
        # levels of the weights' last count, and the transitions that the first
        # training forward since then counted against them (None: not counted yet)
        self.transition_levels = None
        self.transitions = None

    # ---- public surface -------------------------------------------------------------
    @property
    def signed(self):
        return bool(self.signed_flag)

    @property
    def is_initialized(self):
        return bool(self.initialized)

    @property
    def qrange(self):
        """(alpha, beta, gamma) of Eq. 13 for this quantizer."""
        return quant_range(self.bits, self.signed)

    @property
    def use_sign(self):
        return self.bits == 1 and self.signed

    @torch.no_grad()
    def discretize(self, x):
        """Integer levels round(clip(gamma*x/s, alpha, beta)) (sign levels if binary)."""
        alpha, beta, gamma = self.qrange
        return _levels_((x * (gamma / self.scale)).clamp_(alpha, beta), self.use_sign)

    @torch.no_grad()
    def normalize(self, x):
        """gamma * x / s: x in level units, where the transition points are the
        half-integers (0 for binary) and the levels the integers of Eq. 13."""
        return x.detach() * (self.qrange[2] / self.scale.detach())

    @torch.no_grad()
    def update_levels(self, x, prev):
        """Count the elements of `x` whose level differs from `prev` (int8, the levels
        of an earlier x) and write the current levels into `prev`. Returns an int (fused
        CPU kernel, one pass) or a 0-dim tensor on x's device (no host sync on GPUs)."""
        x = x.detach()
        if _use_fused(x) and prev.is_contiguous():
            alpha, beta, gamma = self.qrange
            c = float(self.scale.detach().reciprocal() * gamma)  # as discretize: gamma/s
            return _fused_quantize.update_levels(x, c, alpha, beta, self.use_sign, prev)
        new = self.discretize(x).to(torch.int8)
        changed = (new != prev).sum()
        prev.copy_(new)
        return changed

    def forward(self, x, out_scale=None):
        """x_q of Eq. 13. `out_scale`: a callable returning the factors of a scale f,
        [(tensor, g or None), ...] (see `denorm_term`), which makes the output x_q * f,
        computed in the quantizing pass (QConv2d's de-normalization h). It is called
        after this quantizer has set its LSQ gradient scale, which a factor may carry."""
        if not self.initialized:
            # A frozen stage (ResNet frozen_stages) is in eval mode during training, so
            # "is a training batch" is told by grad mode: evaluation runs without grad.
            if not (self.training or torch.is_grad_enabled()):
                raise RuntimeError(
                    f'Quantizer {self.name or self.kind} has no scale yet: it is set from '
                    'the first training batch. Load a QAT checkpoint (one that contains '
                    '`*_quantizer.scale`) or calibrate with mmtrs.quant.calibrate_quantizers.')
            self.init_from(x)
        signed = self.signed  # the buffer read once per call (each read is a sync)
        check = self.kind == 'act' and not signed and self.check_sign
        return self._quantize(x, signed, check, out_scale)

    @torch.no_grad()
    def requantize(self, x):
        """x_q of an input this quantizer has already quantized, again and bit for bit:
        the forward pass without its initialization, sign check and output scale (a
        layer that keeps x rather than x_q for its backward pass recomputes x_q here)."""
        return self._quantize(x, self.signed, False, None)

    def _quantize(self, x, signed, check, out_scale):
        alpha, beta, gamma = quant_range(self.bits, signed)
        # LSQ gradient scale: N = number of weights, or features per example.
        n = x.numel() if self.kind == 'weight' else x.numel() // x.shape[0]
        if (n, beta) != self._grad_factor_key:  # set only when N or beta changes:
            # nn.Module.__setattr__ costs more than the kernel on small tensors
            self._grad_factor_key, self._grad_factor = (n, beta), 1.0 / math.sqrt(n * beta)
        low_clip = alpha < 0 or not self.check_sign  # unsigned + checked: x >= 0 known
        factors = () if out_scale is None else tuple(out_scale())
        use_sign = self.bits == 1 and signed
        if _use_fused(x):  # one C++ autograd node, no Python on either pass
            # the levels are compared once per optimizer step: by the first training
            # forward after the count, not by further ones (gradient accumulation) or
            # by evaluation
            levels = self.transition_levels
            if levels is not None and (self.transitions is not None or
                                       not torch.is_grad_enabled()):
                levels = None
            out, x_min, changed = _fused_quantize.quantize(
                x, self.scale, [t for t, _ in factors], alpha, beta, gamma, use_sign,
                self._grad_factor, check, [g for _, g in factors], levels)
            if check and float(x_min) < 0:
                raise self._negative_error(float(x_min))
            if levels is not None:
                self.transitions = changed
            return out
        params = (alpha, beta, gamma, use_sign, self._grad_factor, low_clip,
                  self._negative_error if check else None, tuple(g for _, g in factors))
        return _QuantizeFn.apply(x, self.scale, params, *(t for t, _ in factors))

    def denorm_term(self):
        """(s, g): the factor s of the de-normalization h (Eq. 3) with the LSQ gradient
        scale g it carries, as `out_scale` takes it (g None: s as it is). The same value
        and gradient as `denorm_scale()`, without an autograd node of its own."""
        g = self._grad_factor
        if not self.scale.requires_grad or g == 1.0:
            return self.scale, None
        return self.scale, g

    def denorm_scale(self):
        """s for the de-normalization h (Eq. 3), carrying the same LSQ gradient scale
        as inside the quantizer, so d(s * x_q)/ds is exactly LSQ's step-size gradient."""
        g = self._grad_factor
        if not self.scale.requires_grad or g == 1.0:
            return self.scale
        # = (s - s * g).detach() + s * g, value and gradient, in one autograd node
        return _LSQScaledIdentity.apply(self.scale, g)

    # ---- initialization ---------------------------------------------------------------
    @torch.no_grad()
    def init_from(self, x):
        """Set s (and the sign mode, if 'auto') from one batch.

        Under multi-process training the activation statistics are those of the union
        of all ranks' batches (sums are all-reduced), so every rank gets the same s and
        sign, equal to a single process's on the whole batch. Weights are replicated on
        every rank: reducing them too would count each weight world-size times and shift
        the unbiased std by a factor (n-1)/(n-1/W), enough to move weights across
        levels (found by the 1- vs 2-process equivalence test).
        """
        from mmengine import dist
        x = x.detach().double()
        moments = torch.stack([x.sum(), (x * x).sum(),
                               x.new_tensor(float(x.numel()))])
        neg_min = -x.min()
        if self.kind == 'act' and dist.get_world_size() > 1:
            dist.all_reduce(moments, op='sum')
            dist.all_reduce(neg_min, op='max')
        total, total_sq, n = moments
        # unbiased std, as torch.std
        std = ((total_sq - total * total / n) / (n - 1).clamp(min=1)).clamp(min=0).sqrt()
        has_negative = bool(neg_min > 0)
        if self.kind == 'act':
            if self.auto_sign:
                self.signed_flag.fill_(1 if has_negative else 0)
            elif has_negative and not self.signed and self.check_sign:
                raise NegativeInputError(self._negative_msg(-float(neg_min)))
        mult = self.init_mult
        if self.kind == 'act' and not self.signed:
            mult = mult / math.sqrt(1 - 2 / math.pi)
        s = float(mult * std)
        if not math.isfinite(s):
            # init_mult is checked at build time, so only the data can be non-finite
            raise FloatingPointError(
                f'Quantizer `{self.name}`: its first training batch contains NaN/Inf '
                f'(std {float(std)}), so no scale can be set from it. Check the input data '
                'and the checkpoint in load_from for non-finite values.')
        if s <= 0:
            # a constant batch (e.g. all zeros) is represented exactly by any s: keep 1.0,
            # but say so, since the range is then not fitted to real data
            print_log(f'Quantizer `{self.name}`: its first training batch is constant '
                      f'(std 0); scale set to 1.0 instead of init_mult * std.',
                      logger='current', level=logging.WARNING)
            s = 1.0
        self.scale.data.fill_(s)
        self.initialized.fill_(1)

    def _negative_error(self, m):
        return NegativeInputError(self._negative_msg(m))

    def _negative_msg(self, m):
        return (f'Unsigned activation quantizer `{self.name}` received a negative input '
                f'(min {m:.4g}); it would be clipped to 0 silently. Put a ReLU before this '
                'layer, or give it a signed activation quantizer via the quantization '
                "policy key `quant_cfg.signed_act` (module-name patterns) or "
                "`quant_cfg.act_signed='auto'`.")

    # ---- checkpoints --------------------------------------------------------------------
    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict,
                              missing_keys, unexpected_keys, error_msgs):
        # An FP checkpoint has no quantizer entries: those scales are initialised from
        # data on the first training batch, so they are not "missing".
        own = [prefix + k for k in ('scale', 'initialized', 'signed_flag')]
        absent = [k for k in own if k not in state_dict]
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict,
                                      missing_keys, unexpected_keys, error_msgs)
        if len(absent) == len(own):
            for k in absent:
                if k in missing_keys:
                    missing_keys.remove(k)

    def extra_repr(self):
        alpha, beta, gamma = self.qrange
        signed = 'auto' if self.auto_sign and not self.initialized else self.signed
        return (f'{self.kind}, bits={self.bits}, signed={signed}, '
                f'range=[{alpha}, {beta}]/{gamma}, learn_scale={self.scale.requires_grad}')
