"""Per-weight state of the oscillation remedies, as plain tensors (no runner), so each
rule can be checked by hand. The hooks in `per_weight_hooks.py` drive them.

Notation (per quantized layer): latent weight w, scale s, integer level
x_d = round(clip(gamma * w / s, alpha, beta)) (paper Eq. 13).
"""
import torch


class OscillationState:
    """Oscillation tracking of one layer (Nagel et al. 2022, Sec. 3 and their public
    code `utils/oscillation_tracking_utils.py`).

    Per step, from the integer levels x after the update:
        d = x(t) - x(t-1); an oscillation is a change (d != 0) whose direction is
        opposite to the last nonzero change; f <- m * osc + (1 - m) * f.
    With `track_ema_level`, also the EMA of the level used to pick the frozen level:
        e <- m * x + (1 - m) * e (initialised to x when switched on).
    """

    def __init__(self, levels, momentum):
        self.momentum = momentum
        self.prev = levels.to(torch.int8, copy=True)
        self.last_dir = torch.zeros_like(self.prev)        # sign of the last change
        self.freq = torch.zeros(levels.shape, dtype=torch.float32, device=levels.device)
        self.ema_level = None

    @torch.no_grad()
    def update(self, levels, track_ema_level=False):
        x = levels.to(torch.int8, copy=True)
        # int8 difference: a step moves a weight by a few levels, far from the +-127 at
        # which it would wrap (only an 8-bit weight jumping half its range could)
        direction = torch.sign(x - self.prev)
        changed = direction != 0
        osc = (direction * self.last_dir) == -1
        m = self.momentum
        self.freq.mul_(1 - m).add_(osc.to(self.freq.dtype), alpha=m)
        self.last_dir = torch.where(changed, direction, self.last_dir)
        self.prev = x
        if track_ema_level:
            if self.ema_level is None:
                self.ema_level = x.to(torch.float32)
            else:
                self.ema_level.mul_(1 - m).add_(x.to(torch.float32), alpha=m)
        return osc

    def set_levels(self, where, levels):
        """Frozen weights jump to their frozen level: record it as the previous level
        without counting a change."""
        self.prev = torch.where(where, levels.to(torch.int8), self.prev)

    def state_dict(self):
        return dict(prev=self.prev, last_dir=self.last_dir, freq=self.freq,
                    ema_level=self.ema_level)

    def load_state_dict(self, state):
        self.prev = state['prev'].clone()
        self.last_dir = state['last_dir'].clone()
        self.freq = state['freq'].clone()
        e = state['ema_level']
        self.ema_level = None if e is None else e.clone()


class LTSState:
    """Distance-to-level EMA of one layer (SpQAT, which freezes the "partly scratch-off
    lottery ticket", LTS):
        dist <- m * dist + (1 - m) * |w_n - q|   (w_n = gamma * w / s, q its level),
        dist <- 1 (the bin width, in level units) where the level changed this step.
    Initialised to the bin width, so no weight looks settled before it has been
    observed (our choice; the SpQAT paper does not say)."""

    def __init__(self, levels, momentum):
        self.momentum = momentum
        self.prev = levels.to(torch.int8, copy=True)
        self.dist = torch.ones(levels.shape, dtype=torch.float32, device=levels.device)

    @torch.no_grad()
    def update(self, normalized, levels):
        x = levels.to(torch.int8, copy=True)
        m = self.momentum
        ema = self.dist * m + (normalized - levels.to(normalized.dtype)).abs() * (1 - m)
        self.dist = torch.where(x != self.prev, torch.ones_like(ema), ema).to(torch.float32)
        self.prev = x

    def state_dict(self):
        return dict(prev=self.prev, dist=self.dist)

    def load_state_dict(self, state):
        self.prev = state['prev'].clone()
        self.dist = state['dist'].clone()
