"""Where quantized weights sit relative to their grid, and what kind of layer holds them.

Quantities in level units (x = gamma * w / s, Eq. 13): the levels are the integers
alpha..beta and the transition points, where a weight changes level, the half-integers
between them (0 for a binary sign quantizer). The remedies, the transition-rate logging
and the step-size diagnostics all measure weights in these units.
"""
import torch

#: layer kinds reported separately (Nagel et al., ICML 2022, find weight oscillations
#: concentrated in depthwise layers)
LAYER_KINDS = ('depthwise', 'pointwise', 'other')


def layer_kind(layer):
    """'depthwise' (groups == in_channels > 1), 'pointwise' (1x1, ungrouped) or 'other'
    (every other conv and every linear layer)."""
    groups = getattr(layer, 'groups', 1)
    kernel = getattr(layer, 'kernel_size', None)
    if groups > 1 and groups == getattr(layer, 'in_channels', -1):
        return 'depthwise'
    if kernel is not None and tuple(kernel) == (1, 1) and groups == 1:
        return 'pointwise'
    return 'other'


def normalized_weight(layer):
    """The latent weight of a quantized layer in level units, gamma * w / s (detached)."""
    return layer.weight_quantizer.normalize(layer.weight)


@torch.no_grad()
def transition_distance(x, quantizer):
    """|x - nearest transition point| for `x` in level units of `quantizer`: the
    half-integers inside [alpha, beta] for a multi-bit grid, 0 for a sign quantizer.
    Values lie in [0, 0.5] inside the grid (paper Fig. 3c-d)."""
    if quantizer.use_sign:
        return x.abs()
    alpha, beta, _ = quantizer.qrange
    return (x - (x.floor() + 0.5).clamp(alpha + 0.5, beta - 0.5)).abs()
