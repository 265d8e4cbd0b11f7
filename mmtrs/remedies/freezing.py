"""Permanent freezing of individual quantized weights (Nagel et al.'s iterative
freezing, SpQAT's LTS): the mechanism shared by the freezing hooks.

A frozen weight gets a zero gradient (a tensor hook on the weight, so it also drops out
of gradient clipping and DDP's reduction carries zeros) and, after every optimizer
step, is written back to its frozen value, so neither momentum, weight decay nor the
TALR can move it: its level never changes again. Two ways to hold it:

* by level (Nagel et al.): the latent value is set to the bin centre s * l / gamma of
  the frozen level l at the current scale, so the forward uses level l whatever the
  scale does;
* by value (LTS): the latent value it had when frozen, held in level units
  (gamma * w / s), so a weight scale that still learns (plain SGD) cannot move it
  across a level either; with a frozen scale (TR scheduling) this is the latent value
  itself, up to one rounding of the product.

A layer carries its FrozenWeights as `layer.frozen_weights`; frozen weights leave N of
Eq. 5 (`mmtrs.quant.num_frozen`, read by the transition counter).
"""
import torch


class FrozenWeights:
    """The frozen subset of one quantized layer's weights.

    Args:
        layer: a quantized layer (QConv2d, QLinear: `weight` and `weight_quantizer`).
        by_level (bool): hold frozen weights at a level (True) or at a latent value.
    """

    def __init__(self, layer, by_level):
        w = layer.weight
        self.layer = layer
        self.by_level = by_level
        self.mask = torch.zeros_like(w, dtype=torch.bool)
        self.target = torch.zeros_like(w)   # frozen value in level units
        self.count = 0
        self._handle = w.register_hook(self._zero_frozen_grad)

    def _zero_frozen_grad(self, grad):
        return grad.masked_fill(self.mask, 0) if self.count else grad

    @torch.no_grad()
    def freeze(self, new, levels=None):
        """Freeze the weights where `new` (bool) is set: at `levels` (by-level mode) or
        at their current latent value."""
        new = new & ~self.mask
        if not new.any():
            return 0
        if self.by_level:
            self.target[new] = levels[new].to(self.target.dtype)
        else:
            self.target[new] = self.layer.weight_quantizer.normalize(self.layer.weight)[new]
        self.mask |= new
        added = int(new.sum())
        self.count += added
        self.restore()
        return added

    @torch.no_grad()
    def restore(self):
        """Write the frozen weights back (after an optimizer step moved them)."""
        if not self.count:
            return
        w = self.layer.weight
        q = self.layer.weight_quantizer
        value = self.target * (q.scale.detach() / q.qrange[2])
        w.copy_(torch.where(self.mask, value, w))

    def state_dict(self):
        return dict(mask=self.mask.clone(), target=self.target.clone(),
                    by_level=self.by_level)

    def load_state_dict(self, state):
        if state['by_level'] != self.by_level or state['mask'].shape != self.mask.shape:
            raise RuntimeError('frozen-weight state of the checkpoint does not match this '
                               'layer / freezing method; resume with the same config')
        self.mask.copy_(state['mask'])
        self.target.copy_(state['target'])
        self.count = int(self.mask.sum())

    def remove(self):
        self._handle.remove()


def attach_freezer(name, layer, by_level):
    """Give `layer` a FrozenWeights (one freezing method per layer)."""
    if getattr(layer, 'frozen_weights', None) is not None:
        raise ValueError(f'{name}: two weight-freezing hooks on one model (e.g. '
                         'OscillationFreezingHook and LTSFreezingHook); use one of them.')
    layer.frozen_weights = FrozenWeights(layer, by_level)
    return layer.frozen_weights


def detach_freezer(layer):
    fw = getattr(layer, 'frozen_weights', None)
    if fw is not None:
        fw.remove()
        layer.frozen_weights = None

