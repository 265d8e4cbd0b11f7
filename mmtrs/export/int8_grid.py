"""How a quantizer's integer levels (paper Eq. 13) are held in a uint8 tensor, the
activation type of onnxruntime's x86 int8 conv kernels (QLinearConv).

Eq. 13 with (alpha, beta, gamma) = `quant_range(bits, signed)`:

    x_d = round(clip(gamma * x / s, alpha, beta)),   x_q = x_d / gamma

so the levels sit on a grid of step d = s / gamma, from alpha * d to beta * d:
unsigned b bits: 0 .. 2^b - 1 (gamma 2^b); signed: -2^(b-1) .. 2^(b-1) - 1 (gamma
2^(b-1)); unsigned binary: {0, 1} (gamma 1). Two uint8 forms:

  * 'exact' (default): QuantizeLinear(scale d, zero point z) -> Clip(z + alpha,
    z + beta) on the uint8 levels -> DequantizeLinear(d, z), z = 0 for unsigned
    quantizers (the uint8 minimum, so a ReLU before the QuantizeLinear folds into the
    conv before it) and z = 128 for signed ones. QuantizeLinear computes
    saturate(round(x / d) + z); the integer Clip then gives round(clip(x / d, alpha,
    beta)) + z, which is Eq. 13 for any b <= 8 (clipping before or after rounding is the
    same for integer bounds). The uint8 Clip sits between the producer's QuantizeLinear
    and the consumer's DequantizeLinear; onnxruntime 1.32 still fuses both convs into
    QLinearConv (tests/test_export_int8.py counts it) and runs the Clip on bytes. For
    b = 8 the Clip is the uint8 saturation itself and is left out.
  * 'subset' (no Clip node): one QuantizeLinear whose 8-bit range is the b-bit range,
    scale d / k with k = floor(255 / (2^b - 1)) and z = k * (-alpha). Every b-bit level
    is an 8-bit level (x_d * k + z): for b = 4, k = 17 (15 * 17 = 255), b = 2: k = 85,
    b = 1 (unsigned): k = 255, so the clip range is exactly [alpha * d, beta * d]; for
    b = 3, k = 36 and the 8-bit range ends 3 / 36 d above beta * d (b = 5..7 alike).
    The rounding is 8-bit, k times finer than the trained b-bit grid: an approximation
    of the QAT model (measured in docs/export.md), not Eq. 13.

Signed binary activations (sign(x), sign(0) = +1, paper Sec. 4.3) are no rounding of
x and have no QuantizeLinear form: the int8 deployment refuses them.
"""
from dataclasses import dataclass

import numpy as np

from ..quant import quant_range
from .errors import ExportError

GRIDS = ('exact', 'subset')


@dataclass(frozen=True)
class Uint8Grid:
    """scale / zero_point of QuantizeLinear-DequantizeLinear and the uint8 Clip bounds
    (None: no Clip node needed)."""
    scale: float
    zero_point: int
    clip: tuple = None


def uint8_grid(alpha, beta, step, grid='exact'):
    """The uint8 form of a quantizer with integer range [alpha, beta] and grid step
    `step` = s / gamma (float32, the DequantizeLinear scale of model_qcdq.onnx), see
    the module docstring. Returns Uint8Grid."""
    if grid not in GRIDS:
        raise ExportError(f'int8 activation grid {grid!r}: use one of {GRIDS}.')
    if beta - alpha > 255:
        raise ExportError(f'levels [{alpha}, {beta}] do not fit 8 bits.')
    if grid == 'exact':
        zp = 0 if alpha >= 0 else 128
        clip = None if beta - alpha == 255 else (zp + alpha, zp + beta)
        return Uint8Grid(float(np.float32(step)), zp, clip)
    k = 255 // (beta - alpha)
    return Uint8Grid(float(np.float32(step) / np.float32(k)), -alpha * k, None)


def quantizer_grid(bits, signed, s, grid='exact'):
    """`uint8_grid` of a quantizer given by bit-width, signedness and scale s (its
    step is float32(s) / gamma, as model_qcdq.onnx writes it). Raises ExportError for
    signed binary quantizers."""
    if bits == 1 and signed:
        raise ExportError('signed binary activations (sign(x)) have no QuantizeLinear '
                          'form: the int8 deployment does not cover them; deploy '
                          'model_qcdq.onnx.')
    alpha, beta, gamma = quant_range(bits, signed)
    return uint8_grid(alpha, beta, np.float32(s) / np.float32(gamma), grid)
