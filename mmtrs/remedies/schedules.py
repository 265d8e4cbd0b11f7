"""Schedules of the remedies' thresholds and loss weights over training (pure
functions of the iteration)."""
import math


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
    'constant' tau_max (SpQAT)."""
    t0 = warmup_frac * total
    if t < t0:
        return None
    p = min(1.0, (t - t0) / max(total - t0, 1e-12))
    if schedule == 'linear':
        return tau_max * p
    if schedule == 'sine':
        return tau_max * math.sin(0.5 * math.pi * p)
    return tau_max
