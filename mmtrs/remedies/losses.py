"""Loss terms of the oscillation remedies, as pure functions of one quantized layer.

Notation: latent weight w, scale s, level x_d = round(clip(gamma * w / s, alpha, beta)),
bin centre w_q = s * x_d / gamma (weight units), w_c = clip(w, s*alpha/gamma, s*beta/gamma).
The scale is detached in both: the regularisers pull latent weights toward their bins
and leave range learning to the task loss (Nagel et al.'s code clamps "in the FP32
domain to not change range learning").
"""
import torch


def _bin_terms(layer):
    q = layer.weight_quantizer
    alpha, beta, gamma = q.qrange
    s = q.scale.detach()
    w = layer.weight
    levels = q.discretize(w.detach())                 # no gradient: sg(w_q)
    w_q = levels * (s / gamma)
    w_c = torch.maximum(torch.minimum(w, s * (beta / gamma)), s * (alpha / gamma))
    return w_q, w_c, levels, alpha


def dampening_loss(layer):
    """Oscillation dampening (Nagel et al. 2022, Eq. 7; public code `dampening_loss`,
    aggregation 'kernel_mean'): sum over output channels, mean over the rest, of
    (sg(w_q) - w_c)^2."""
    w_q, w_c, _, _ = _bin_terms(layer)
    return (w_q - w_c).pow(2).sum(0).mean()


def bin_regularization_loss(layer):
    """Oscillation-aware bin regularisation, OBR (Quantization Variation, Huang et al. 2023):
    mean((sg(w_q) - w_c)^2) + sum over levels k of the unbiased variance of w_c over the
    weights at level k; levels holding fewer than 2 weights are skipped. Bins are found
    by integer level, not by float equality of w_q."""
    w_q, w_c, levels, alpha = _bin_terms(layer)
    # Within a bin w_q is constant, so Var(w_c) = Var(d) with d = w_c - w_q. d is small
    # (at most half a bin), so per-bin sums of d and d^2 give the variance without the
    # cancellation that sums of w_c would suffer, in two scatter passes.
    d = (w_c - w_q).flatten()
    sq = d * d
    idx = (levels - alpha).long().flatten()
    nbins = int(idx.max()) + 1
    zeros = torch.zeros(nbins, dtype=d.dtype, device=d.device)
    s1 = zeros.index_add(0, idx, d)
    s2 = zeros.index_add(0, idx, sq)
    count = torch.bincount(idx, minlength=nbins).to(d.dtype)
    keep = count >= 2
    var = (s2[keep] - s1[keep] ** 2 / count[keep]) / (count[keep] - 1)
    return sq.mean() + var.sum()
