"""The feedback loop of TR scheduling (paper Sec. 4.2) as plain state on tensors: no
optimizer, no runner, so each equation can be checked by hand.

    k^t = #{i : w_d^t(i) != w_d^(t-1)(i)} / N                       (Eq. 5)
    K^t = m K^(t-1) + (1 - m) k^t                                   (Eq. 10)
    U^t = max(0, U^(t-1) + eta (R^t - K^t))                         (Eq. 11)

Beyond the paper (opt-in, `controller='log'`): Eq. 11 in log space,

    U^t = U^(t-1) exp(clip(eta_log (log R^t - log K^t), -c, c))      (c = log_step_clip)

The additive Eq. 11 changes U by eta * (R - K), an amount fixed in absolute units: a
target that falls over orders of magnitude within a short run (cosine to 0) leaves it
either too slow late in the run or unstable early (docs/tr_scheduling.md). The log form
corrects the same *relative* error at the same speed at every scale of R, and U stays
positive without a clamp.

`RunningTransitionRate` (Eqs. 5, 10) is shared by TRSOptimWrapper and by
TransitionRateHook, which measures the same quantities under a plain optimizer;
`TALRController` (Eq. 11) is TRSOptimWrapper's.
"""
import torch


class RunningTransitionRate:
    """k (Eq. 5) and its running average K (Eq. 10), one global pair or one per layer.

    Args:
        momentum (float): m of Eq. 10, in [0, 1).
        size (int): number of (k, K) pairs: 1 (global) or the number of layers.
    """

    def __init__(self, momentum, size=1):
        self.momentum = float(momentum)
        self.per_layer = size > 1
        self.k = torch.zeros(size, dtype=torch.float64)
        self.K = torch.zeros(size, dtype=torch.float64)
        self.num_updates = 0

    def update(self, changed, numels):
        """One step from per-layer counts of changed levels (float64 tensors `changed`
        and `numels`, the N of Eq. 5 per layer)."""
        if self.per_layer:
            k = changed / numels
        else:
            k = (changed.sum() / numels.sum()).reshape(1)
        self.k = k                                                   # Eq. 5
        m = self.momentum
        self.K = m * self.K + (1 - m) * k                            # Eq. 10
        self.num_updates += 1

    def corrected(self):
        """K^t / (1 - m^t): K without the bias of K^0 = 0 (as Adam's moments)."""
        return self.K / (1 - self.momentum ** max(self.num_updates, 1))

    def as_seen(self, bias_correction):
        """The K that Eq. 11 uses: bias-corrected or not."""
        return self.corrected() if bias_correction else self.K


class TALRController:
    """The transition-adaptive learning rate U of Eq. 11 (additive, as in the paper) or
    of its log-space form.

    Args:
        size (int): number of U values (1 global, or one per layer).
        init_talr (float): U^0.
        mode (str): 'additive' (Eq. 11) or 'log'.
        eta (float | None): eta of the additive form (may be set later, `reset`).
        eta_log (float): gain of the log form, per step.
        log_step_clip (float): c of the log form: U changes by at most e^c per step.
        log_floor (float): K and R are floored at this before the log.
    """

    def __init__(self, size, init_talr, mode='additive', eta=None, eta_log=0.2,
                 log_step_clip=0.6931471805599453, log_floor=1e-9):
        self.U = torch.full((size,), float(init_talr), dtype=torch.float64)
        self.mode = mode
        self.eta = eta
        self.eta_log = float(eta_log)
        self.log_step_clip = float(log_step_clip)
        self.log_floor = float(log_floor)

    def reset(self, init_talr, eta):
        """Start again from U = init_talr with gain eta (end of an R^0 measurement)."""
        self.U.fill_(float(init_talr))
        self.eta = eta

    def update(self, R, K):
        """One step of Eq. 11 towards the target R (a float) from the running TR K."""
        if self.mode == 'log':
            floor = self.log_floor
            err = torch.log(torch.clamp(torch.as_tensor(R, dtype=torch.float64), min=floor)) \
                - torch.log(torch.clamp(K, min=floor))
            step = torch.clamp(self.eta_log * err, -self.log_step_clip, self.log_step_clip)
            self.U = self.U * torch.exp(step)
        else:
            self.U = torch.clamp(self.U + self.eta * (R - K), min=0)  # Eq. 11
