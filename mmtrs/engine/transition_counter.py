"""Counting transitions of quantized weights (paper Eq. 5) and distances to transition
points (the quantity of the paper's Fig. 3d)."""
import torch

from mmtrs.quant import quantizer as qmod

from .weight_freezing import num_frozen


def _update_levels(layer, prev):
    """Number of weights of `layer` whose level differs from `prev` (an int, or a 0-dim
    tensor on the weights' device); `prev` is updated to the current levels in place.
    One fused pass on CPU float32 weights."""
    q, w = layer.weight_quantizer, layer.weight.detach()
    if qmod.fused_kernel_available() and qmod._use_fused(w) and prev.is_contiguous():
        alpha, beta, gamma = q.qrange
        c = float(q.scale.detach().reciprocal() * gamma)  # as discretize computes gamma/s
        return qmod._fused_quantize.update_levels(w, c, alpha, beta, q.use_sign, prev)
    new = q.discretize(w).to(torch.int8)
    changed = (new != prev).sum()  # a device tensor: no per-layer sync on GPUs
    prev.copy_(new)
    return changed


class TransitionCounter:
    """Keeps the integer levels of the controlled weights and counts how many changed.

    Levels are kept as int8 (every supported bit-width fits), so the bookkeeping is one
    discretization and one comparison per weight and step.
    """

    def __init__(self, layers):
        if not layers:
            raise ValueError('no quantized layers to count transitions on')
        self.names = [n for n, _ in layers]
        self.layers = [m for _, m in layers]
        self.prev = None

    @property
    def numels(self):
        """Per-layer N of Eq. 5: the weights that can still transition. Weights frozen
        by a freezing hook (weight_freezing.py) cannot, so they leave N."""
        return torch.tensor([max(m.weight.numel() - num_frozen(m), 1) for m in self.layers],
                            dtype=torch.float64)

    def levels(self):
        return [m.weight_quantizer.discretize(m.weight.detach()).to(torch.int8)
                for m in self.layers]

    @torch.no_grad()
    def count(self):
        """Per-layer number of changed levels since the previous call (Eq. 5 numerator);
        the stored levels become the current ones.

        Returns None on the first call, when there is nothing to compare with.
        """
        if self.prev is None:
            self.prev = self.levels()
            return None
        counts = [_update_levels(m, prev) for m, prev in zip(self.layers, self.prev)]
        if all(isinstance(c, int) for c in counts):
            return torch.tensor(counts, dtype=torch.float64)
        return torch.stack([torch.as_tensor(c) for c in counts]).to('cpu', torch.float64)

    @torch.no_grad()
    def transition_distance(self, near=0.05):
        """Mean distance of normalized latent weights to their nearest transition point
        (in level units) and the fraction closer than `near`, over all weights.

        Multi-bit: transition points are the half-integers between alpha and beta;
        binary (sign): the single point 0.
        """
        total = dist_sum = near_sum = 0.0
        for m in self.layers:
            q = m.weight_quantizer
            alpha, beta, gamma = q.qrange
            v = m.weight.detach() * (gamma / q.scale)
            if q.use_sign:
                d = v.abs()
            else:
                t = (v.floor() + 0.5).clamp_(alpha + 0.5, beta - 0.5)
                d = (v - t).abs_()
            total += d.numel()
            dist_sum += float(d.sum())
            near_sum += float((d < near).sum())
        return dist_sum / total, near_sum / total
