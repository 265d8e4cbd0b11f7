"""Counting transitions of quantized weights: the numerator of paper Eq. 5."""
import torch

from ..quant import num_frozen, transition_distance


class TransitionCounter:
    """Keeps the integer levels of the controlled weights and counts how many changed.

    Levels are kept as int8 (every supported bit-width fits), so the bookkeeping is one
    discretization and one comparison per weight and step.

    With `in_forward=True` (for a caller that counts between a training forward and the
    optimizer step that follows it, as TRSOptimWrapper does) the comparison is made in
    the weight quantizer's forward pass, which computes the same levels anyway (fused
    CPU kernel): `count()` then only collects what that pass counted, and falls back to
    its own pass for any layer whose forward did not count (other devices, the ATen
    path, a layer that did not run).

    Args:
        layers (list): (name, quantized layer) pairs.
        in_forward (bool): count in the weight quantizers' forward pass where possible.
    """

    def __init__(self, layers, in_forward=False):
        if not layers:
            raise ValueError('no quantized layers to count transitions on')
        self.names = [n for n, _ in layers]
        self.layers = [m for _, m in layers]
        self.in_forward = in_forward
        self._prev = None

    @property
    def prev(self):
        """The int8 levels of each layer's weights at the last count (None before)."""
        return self._prev

    @prev.setter
    def prev(self, levels):
        self._prev = levels
        if self.in_forward:
            for m, lv in zip(self.layers, levels or [None] * len(self.layers)):
                m.weight_quantizer.transition_levels = lv
                m.weight_quantizer.transitions = None

    @property
    def numels(self):
        """Per-layer N of Eq. 5: the weights that can still transition. Weights held by
        a freezing remedy cannot, so they leave N."""
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
        counts = []
        for m, prev in zip(self.layers, self.prev):
            q = m.weight_quantizer
            # counted by the forward pass against these levels (in_forward)
            if q.transitions is not None and q.transition_levels is prev:
                counts.append(q.transitions)
                q.transitions = None
            else:
                counts.append(q.update_levels(m.weight, prev))
        if all(isinstance(c, int) for c in counts):
            return torch.tensor(counts, dtype=torch.float64)
        return torch.stack([torch.as_tensor(c) for c in counts]).to('cpu', torch.float64)

    @torch.no_grad()
    def transition_distance(self, near=0.05):
        """Mean distance of normalized latent weights to their nearest transition point
        (in level units, paper Fig. 3d) and the fraction closer than `near`, over all
        weights."""
        total = dist_sum = near_sum = 0.0
        for m in self.layers:
            d = transition_distance(m.weight_quantizer.normalize(m.weight),
                                    m.weight_quantizer)
            total += d.numel()
            dist_sum += float(d.sum())
            near_sum += float((d < near).sum())
        return dist_sum / total, near_sum / total
