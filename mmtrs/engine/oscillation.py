"""Per-weight state of the seeds' oscillation remedies, as plain tensors (no runner), so
each rule can be checked by hand. The hooks in `seed_method_hooks.py` drive them.

Notation (per quantized layer): latent weight w, scale s, integer level
x_d = round(clip(gamma * w / s, alpha, beta)) (paper Eq. 13).
"""
import math

import torch


def layer_kind(layer):
    """'depthwise', 'pointwise' (1x1, ungrouped) or 'other' (Nagel et al. find the
    oscillations concentrated in depthwise layers)."""
    groups = getattr(layer, 'groups', 1)
    kernel = getattr(layer, 'kernel_size', None)
    if groups > 1 and groups == getattr(layer, 'in_channels', -1):
        return 'depthwise'
    if kernel is not None and tuple(kernel) == (1, 1) and groups == 1:
        return 'pointwise'
    return 'other'


def cosine_anneal(t, total, start_frac, v_from, v_to):
    """v_from at t = start_frac * total, cosine to v_to at t = total; None before the
    start (the rule is off). Used for Nagel et al.'s freezing threshold (0.1 -> 0.01)
    and dampening weight (0 -> lambda), and QV's OBR weight (0 -> lambda), all starting
    at 25% of training in their public code."""
    t0 = start_frac * total
    if t < t0:
        return None
    p = min(1.0, (t - t0) / max(total - t0, 1e-12))
    return v_to + (v_from - v_to) * 0.5 * (1.0 + math.cos(math.pi * p))


def lts_tau(t, total, warmup_frac, schedule='linear', tau_max=1.0):
    """LTS freezing threshold tau(t) in bin widths: None during the warm-up, then rising
    0 -> tau_max over the rest of training ('linear', or 'sine': tau_max*sin(pi/2*p)), or
    'constant' tau_max (SpQAT, seed 002)."""
    t0 = warmup_frac * total
    if t < t0:
        return None
    p = min(1.0, (t - t0) / max(total - t0, 1e-12))
    if schedule == 'linear':
        return tau_max * p
    if schedule == 'sine':
        return tau_max * math.sin(0.5 * math.pi * p)
    return tau_max


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
    """Distance-to-level EMA of one layer (SpQAT / LTS, seed 002):
        dist <- m * dist + (1 - m) * |w_n - q|   (w_n = gamma * w / s, q its level),
        dist <- 1 (the bin width, in level units) where the level changed this step.
    Initialised to the bin width, so no weight looks settled before it has been
    observed (our choice; the seed does not say)."""

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
