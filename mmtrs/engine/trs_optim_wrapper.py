"""TR scheduling (paper Sec. 4.2, Eqs. 5 and 10-12) as an MMEngine optimizer wrapper.

At every optimizer step t, before updating:

    k^t = #{i : w_d^t(i) != w_d^(t-1)(i)} / N                       (Eq. 5)
    K^t = m K^(t-1) + (1 - m) k^t                                   (Eq. 10)
    U^t = max(0, U^(t-1) + eta (R^t - K^t))                         (Eq. 11)
    w^(t+1) = w^t - U^t g^t                                         (Eq. 12)

Beyond the paper (opt-in, `controller='log'`): Eq. 11 in log space,

    U^t = U^(t-1) exp(clip(eta_log (log R^t - log K^t), -c, c))      (c = log_step_clip)

The additive Eq. 11 changes U by eta * (R - K), an amount fixed in absolute units: a
target that falls over orders of magnitude within a short run (cosine to 0) leaves it
either too slow late in the run (K stays far above a tiny R; measured on the R18 demo:
K/R = 13 at 280 of 300 iterations) or unstable early. The log form corrects the same
*relative* error at the same speed at every scale of R (a persistent factor-e error
changes U by a factor e^eta_log per step), and U stays positive without a clamp.

g^t is the wrapped optimizer's own unit-LR direction (SGD: momentum buffer; Adam/AdamW:
m_hat / (sqrt(v_hat) + eps)). Eq. 12 is realised by giving the quantized latent weights
param groups of their own and substituting U^t for their `lr` only for the duration of
`optimizer.step()`. Their `lr` key therefore keeps whatever MMEngine's LR schedulers
write into it (the schedulers never see the TALR, and the TALR never sees them); every
other parameter trains with the ordinary scheduled LR.

The target R^t lives in the param-group key `target_tr`, so MMEngine's stock
ParamSchedulers drive it (`param_name='target_tr'`): warm-up, cosine, step, ...
"""
import torch
from mmengine import dist
from mmengine.logging import print_log
from mmengine.optim import AmpOptimWrapper, DefaultOptimWrapperConstructor, OptimWrapper
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS, OPTIM_WRAPPERS

from ..quant.policy import quantized_layers
from ..utils.config_schema import TRS_OPTIM_WRAPPER_SCHEMA
from .transition_counter import TransitionCounter


def give_weights_own_groups(optimizer, layers, **settings):
    """Move the weight of each (name, layer) in `layers` into a param group of its own,
    with the settings of the group it came from updated by `settings` (callables are
    called with (layer index, that group)); groups left empty are dropped. Returns the
    names of the layers whose weight the optimizer did not hold."""
    index = {id(m.weight): i for i, (_, m) in enumerate(layers)}
    found = set()
    new_groups = []
    for group in optimizer.param_groups:
        keep = []
        for p in group['params']:
            i = index.get(id(p))
            if i is None:
                keep.append(p)
            else:
                found.add(i)
                g = {k: v for k, v in group.items() if k != 'params'}
                g.update({k: v(i, group) if callable(v) else v for k, v in settings.items()},
                         params=[p])
                new_groups.append(g)
        group['params'] = keep
    optimizer.param_groups[:] = [g for g in optimizer.param_groups if g['params']] + \
        new_groups
    return [layers[i][0] for i in range(len(layers)) if i not in found]

TARGET_KEY = 'target_tr'


class TransitionRateSchedulingMixin:
    """TR scheduling for any MMEngine OptimWrapper (mixed in before the wrapper class).

    Args (config keys of `optim_wrapper`, defaults from ../shared/METHOD.md):
        tr_momentum (float): m of Eq. 10, in [0, 1). Default 0.99.
        init_talr (float | None): U^0. None = the optimizer's initial LR.
        eta (float | 'auto' | None): eta of Eq. 11. None = the optimizer's initial LR
            (paper-style default). 'auto' = init_talr / (R^0 * eta_adapt_iters): a
            sustained 100% TR error then changes U by U^0 in `eta_adapt_iters` steps.
        init_target (float | 'auto'): R^0 in [0, 1], written into every param group's
            `target_tr`.
            'auto' measures R^0 as the running TR under the ordinary LR over the first
            `auto_target_iters` steps (the TALR is not used meanwhile); `target_tr` is then
            a factor (starting at 1) scheduled by the ParamSchedulers and R^t = R^0_measured
            * factor^t / factor^(end of measurement).
        auto_target_iters (int): length of the measurement phase of init_target='auto'.
        eta_adapt_iters (int): see eta='auto'.
        per_layer (bool): one (K, U) pair per quantized layer instead of one global pair.
        bias_correction (bool): use K^t / (1 - m^t) in Eq. 11 (K^0 = 0 otherwise makes U
            climb for ~1/(1-m) steps). The paper's Eq. 11 uses K^t: default False.
        allow_learnable_weight_scale (bool): the paper freezes weight scales under TR
            scheduling (footnote 2); True only for experiments.
        auto_target_scale (float): with init_target='auto', R^0 = this factor times the
            measured running TR (the knob a fair comparison tunes, like SGD's LR; the
            light-model study tries {1/3, 1, 3, 9}). Default 1.
        controller ('additive' | 'log'): 'additive' = the paper's Eq. 11 (default);
            'log' = Eq. 11 in log space (see the module docstring; not in the paper).
        eta_log (float): gain of controller='log', per step. Default 0.2: on a 120-step
            W2A2 MobileNetV2 check (m = 0.9) 0.05 was too slow for a cosine target
            (mean |K-R|/R 0.83) and 0.2 tracked like the additive form with
            eta_adapt_iters=10 (0.27 vs 0.26; docs/results.md).
        log_step_clip (float): c of controller='log': U changes by at most a factor
            e^c per step (bounds the step when K or R is 0). Default log(2).
        log_floor (float): K and R are floored at this value before the log (R = 0 at
            the end of a cosine schedule then drives U down by e^-c per step).
    """

    def __init__(self, *args, tr_momentum=0.99, init_talr=None, eta=None, init_target=1e-2,
                 auto_target_iters=100, eta_adapt_iters=200, per_layer=False,
                 bias_correction=False, allow_learnable_weight_scale=False,
                 auto_target_scale=1.0, controller='additive', eta_log=0.2,
                 log_step_clip=0.6931471805599453, log_floor=1e-9, **kwargs):
        # types, ranges and cross-key rules: mmtrs/utils/config_schema.py
        TRS_OPTIM_WRAPPER_SCHEMA.check(dict(
            tr_momentum=tr_momentum, init_talr=init_talr, eta=eta, init_target=init_target,
            auto_target_iters=auto_target_iters, eta_adapt_iters=eta_adapt_iters,
            per_layer=per_layer, bias_correction=bias_correction,
            allow_learnable_weight_scale=allow_learnable_weight_scale,
            auto_target_scale=auto_target_scale, controller=controller, eta_log=eta_log,
            log_step_clip=log_step_clip, log_floor=log_floor), 'optim_wrapper')
        super().__init__(*args, **kwargs)
        self.tr_momentum = float(tr_momentum)
        self.per_layer = bool(per_layer)
        self.bias_correction = bool(bias_correction)
        self.allow_learnable_weight_scale = allow_learnable_weight_scale
        self.auto_target = init_target == 'auto'
        self.auto_target_iters = auto_target_iters
        self.eta_adapt_iters = eta_adapt_iters
        self.auto_target_scale = float(auto_target_scale)
        self.controller = controller
        self.eta_log = float(eta_log)
        self.log_step_clip = float(log_step_clip)
        self.log_floor = float(log_floor)
        self._eta_cfg = eta
        self._init_talr_cfg = init_talr
        base_lr = self.optimizer.param_groups[0]['lr']
        for group in self.optimizer.param_groups:
            group.setdefault(TARGET_KEY, 1.0 if self.auto_target else float(init_target))
        # MMEngine's OptimWrapper.param_groups also lists `base_param_settings`, a pseudo
        # group it adds when the optimizer starts with several groups (paramwise_cfg, as
        # in the Swin AdamW configs); the ParamSchedulers read `target_tr` from it too
        if getattr(self, 'base_param_settings', None) is not None:
            self.base_param_settings.setdefault(
                TARGET_KEY, 1.0 if self.auto_target else float(init_target))
        self._base_lr = base_lr
        self._counter = None
        # TR state (all of it goes into state_dict)
        self._steps = 0          # optimizer steps taken under this wrapper
        self._num_updates = 0    # Eq. 10 updates so far (for bias correction)
        self._tr_scale = 1.0     # R^t = _tr_scale * group['target_tr']
        self._eta = None
        self._K = None
        self._U = None
        self._k = None

    # ---- binding to the model ----------------------------------------------------------
    def bind_model(self, model):
        """Give each quantized latent weight a param group of its own (`trs_layer` key)."""
        layers = quantized_layers(model)
        # frozen layers (ResNet frozen_stages) never transition: scheduling them would
        # only dilute the TR of Eq. 5
        frozen = [n for n, m in layers if not m.weight.requires_grad]
        layers = [(n, m) for n, m in layers if m.weight.requires_grad]
        if frozen:
            print_log(f'TRSOptimWrapper: {len(frozen)} frozen quantized layers are not '
                      f'TR-scheduled (e.g. {frozen[0]})', logger='current')
        if not layers:
            raise ValueError(
                'TRSOptimWrapper found no quantized layer (QConv2d, QLinear) in the model: '
                'use a '
                "quantized model (model.type='QuantizedDetector' with a quant_cfg) or a "
                "plain optim_wrapper type='OptimWrapper'.")
        learnable = [n for n, m in layers if m.weight_quantizer.scale.requires_grad]
        if learnable and not self.allow_learnable_weight_scale:
            raise ValueError(
                f'TR scheduling needs frozen weight scales (paper footnote 2), but '
                f'{len(learnable)} layers have learnable ones (e.g. {learnable[0]}): set '
                'model.quant_cfg.learn_weight_scale=False, or '
                'optim_wrapper.allow_learnable_weight_scale=True to experiment.')
        missing = give_weights_own_groups(self.optimizer, layers,
                                          trs_layer=lambda i, group: i)
        if missing:
            raise ValueError(f'quantized weights not handed to the optimizer (frozen?): '
                             f'{missing[:3]}')
        self._counter = TransitionCounter(layers)
        n = len(layers) if self.per_layer else 1
        init_talr = self._base_lr if self._init_talr_cfg is None else self._init_talr_cfg
        self._K = torch.zeros(n, dtype=torch.float64)
        self._U = torch.full((n,), float(init_talr), dtype=torch.float64)
        self._k = torch.zeros(n, dtype=torch.float64)
        if not self.auto_target:
            self._eta = self._resolve_eta(init_talr, self._target())
        print_log(f'TRSOptimWrapper: TR scheduling on {len(layers)} quantized layers, '
                  f'{int(self._counter.numels.sum())} weights, '
                  f'{"per-layer" if self.per_layer else "global"} TALR', logger='current')

    @property
    def _tr_groups(self):
        # Looked up each time: torch's Optimizer.load_state_dict replaces the group dicts.
        return [g for g in self.optimizer.param_groups if 'trs_layer' in g]

    def _resolve_eta(self, talr, target):
        if self._eta_cfg == 'auto':
            return float(talr) / (float(target) * self.eta_adapt_iters)
        return self._base_lr if self._eta_cfg is None else float(self._eta_cfg)

    def _check_bound(self):
        if self._counter is None:
            raise RuntimeError(
                "TRSOptimWrapper is not bound to the model: add constructor="
                "'TRSOptimWrapperConstructor' to the optim_wrapper config.")

    # ---- the method --------------------------------------------------------------------
    def _target(self):
        """R^t: the scheduled `target_tr` of the controlled groups (times the measured
        scale in auto mode)."""
        return self._tr_scale * self._tr_groups[0][TARGET_KEY]

    @property
    def measuring_target(self):
        """True until R^0 of init_target='auto' is known (it is set at the start of step
        number auto_target_iters + 1, from the transitions of the steps before)."""
        return self.auto_target and self._steps <= self.auto_target_iters

    def _update_schedule(self, changed):
        """Eqs. 5, 10 and 11 from the per-layer counts of changed levels."""
        m = self.tr_momentum
        numels = self._counter.numels
        if self.per_layer:
            k = changed / numels
        else:
            k = (changed.sum() / numels.sum()).reshape(1)
        self._k = k
        self._K = m * self._K + (1 - m) * k                          # Eq. 10
        self._num_updates += 1
        K = self._K / (1 - m ** self._num_updates) if self.bias_correction else self._K
        if self.measuring_target:
            return  # still measuring R^0 (this count is of an ordinary-LR update)
        R = self._target()
        if self.controller == 'log':  # Eq. 11 in log space (beyond the paper)
            floor = self.log_floor
            err = torch.log(torch.clamp(torch.as_tensor(R, dtype=torch.float64), min=floor)) \
                - torch.log(torch.clamp(K, min=floor))
            step = torch.clamp(self.eta_log * err, -self.log_step_clip, self.log_step_clip)
            self._U = self._U * torch.exp(step)
        else:
            self._U = torch.clamp(self._U + self._eta * (R - K), min=0)  # Eq. 11

    def _finish_auto_target(self):
        """End of init_target='auto': R^0 := running TR measured under the ordinary LR."""
        K = self._K / (1 - self.tr_momentum ** max(self._num_updates, 1))
        measured = self._global(K)
        if measured <= 0:
            raise RuntimeError(
                f'init_target=auto measured no transition in {self.auto_target_iters} steps '
                '(running TR 0): the LR is too small to move any quantized weight. Raise '
                'the LR, optim_wrapper.auto_target_iters, or set optim_wrapper.init_target.')
        init_target = self.auto_target_scale * measured
        self._tr_scale = init_target / self._tr_groups[0][TARGET_KEY]
        lr = self._tr_groups[0]['lr']
        init_talr = lr if self._init_talr_cfg is None else self._init_talr_cfg
        self._U.fill_(float(init_talr))
        self._eta = self._resolve_eta(init_talr, init_target)
        gain = (f'eta_log {self.eta_log:.3g}' if self.controller == 'log'
                else f'eta {self._eta:.3e}')
        print_log(f'TRSOptimWrapper: measured running TR {measured:.3e} over '
                  f'{self.auto_target_iters} steps; initial target {init_target:.3e} '
                  f'(x{self.auto_target_scale:g}); TALR starts at {init_talr:.3e}, {gain}',
                  logger='current')

    def step(self, **kwargs):
        self._check_bound()
        changed = self._counter.count()   # levels of w^t vs w^(t-1)
        if changed is not None:
            if dist.get_world_size() > 1:
                # Weights are identical across ranks under DDP, so the counts are too;
                # averaging keeps every rank's k, K, U equal even if they ever drift.
                dist.all_reduce(changed, op='mean')
            self._update_schedule(changed)
        if self.auto_target and self._steps == self.auto_target_iters:
            self._finish_auto_target()
        groups = self._tr_groups
        saved = [g['lr'] for g in groups]
        if not (self.auto_target and self._steps < self.auto_target_iters):
            for g in groups:                                        # Eq. 12
                g['lr'] = float(self._U[g['trs_layer'] if self.per_layer else 0])
        try:
            super().step(**kwargs)
        finally:
            for g, lr in zip(groups, saved):
                g['lr'] = lr
        self._steps += 1

    # ---- read-only views (global values) -----------------------------------------------
    def _global(self, t):
        if t is None:
            return float('nan')
        if not self.per_layer:
            return float(t[0])
        w = self._counter.numels
        return float((t * w).sum() / w.sum())

    @property
    def transition_rate(self):
        """k: fraction of controlled weights that changed level in the last update."""
        return self._global(self._k)

    @property
    def running_tr(self):
        """K: running transition rate (Eq. 10)."""
        return self._global(self._K)

    @property
    def talr(self):
        """U: transition-adaptive LR (Eq. 11); the ordinary LR while measuring."""
        if self.measuring_target:
            return float(self._tr_groups[0]['lr'])
        return self._global(self._U)

    @property
    def target_tr(self):
        """R: the current scheduled target TR."""
        return self._target()

    @property
    def tracking_error(self):
        """|K - R| / R with the K that Eq. 11 sees (bias-corrected if enabled): how well
        the running TR follows its target. NaN while R^0 is measured or when R = 0."""
        if self.measuring_target or self._K is None:
            return float('nan')
        K = self._K / (1 - self.tr_momentum ** max(self._num_updates, 1)) \
            if self.bias_correction else self._K
        R = self._target()
        return abs(self._global(K) - R) / R if R > 0 else float('nan')

    def layer_values(self):
        """Per-layer (name, k, K, U) for logging; U is shared in global mode."""
        names = self._counter.names
        k = self._k if self.per_layer else None
        rows = []
        for i, name in enumerate(names):
            j = i if self.per_layer else 0
            rows.append((name, float(k[i]) if k is not None else None,
                         float(self._K[j]), float(self._U[j])))
        return rows

    # ---- checkpoints ---------------------------------------------------------------------
    def state_dict(self):
        state = super().state_dict()
        self._check_bound()
        state['trs'] = dict(
            steps=self._steps, num_updates=self._num_updates, tr_scale=self._tr_scale,
            eta=self._eta, K=self._K.clone(), U=self._U.clone(), k=self._k.clone(),
            per_layer=self.per_layer, layer_names=list(self._counter.names),
            prev_levels=None if self._counter.prev is None else
            [t.clone() for t in self._counter.prev])
        return state

    def load_state_dict(self, state_dict):
        self._check_bound()
        trs = state_dict.pop('trs', None)
        if trs is None:
            raise RuntimeError(
                'The checkpoint has no TR-scheduling state: it was written by a plain '
                'optimizer wrapper, so its optimizer state (param groups, momenta) does not '
                'match TRSOptimWrapper. To continue training that model with TR '
                'scheduling, start a new run from its weights with `load_from=CKPT` '
                '(no --resume).')
        if trs['layer_names'] != self._counter.names or trs['per_layer'] != self.per_layer:
            raise RuntimeError(
                'The checkpoint\'s TR-scheduling state was written for a different set of '
                'quantized layers or per_layer mode; resume with the same config.')
        super().load_state_dict(state_dict)
        self._steps = trs['steps']
        self._num_updates = trs['num_updates']
        self._tr_scale = trs['tr_scale']
        self._eta = trs['eta']
        self._K = trs['K'].clone()
        self._U = trs['U'].clone()
        self._k = trs['k'].clone()
        prev = trs['prev_levels']
        self._counter.prev = None if prev is None else [t.clone() for t in prev]


@OPTIM_WRAPPERS.register_module()
class TRSOptimWrapper(TransitionRateSchedulingMixin, OptimWrapper):
    """OptimWrapper with TR scheduling; see TransitionRateSchedulingMixin."""


@OPTIM_WRAPPERS.register_module()
class AmpTRSOptimWrapper(TransitionRateSchedulingMixin, AmpOptimWrapper):
    """AmpOptimWrapper with TR scheduling (needs a device AmpOptimWrapper supports).

    A step that the loss scaler skips (inf/NaN gradients) leaves the weights unchanged,
    so the next count sees no transitions from it, as it should.
    """


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class TRSOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """DefaultOptimWrapperConstructor that also binds a TR-scheduling wrapper to the
    model, so the quantized latent weights get param groups of their own before the
    param schedulers are built."""

    def __call__(self, model):
        from mmengine.registry import OPTIMIZERS
        opt_type = self.optimizer_cfg.get('type')
        if isinstance(opt_type, str) and OPTIMIZERS.get(opt_type) is None:
            # MMEngine would fail later with "None is not a callable object".
            raise KeyError(
                f'optim_wrapper.optimizer.type={opt_type!r} is not a registered optimizer; '
                "use a torch optimizer name such as 'SGD', 'Adam' or 'AdamW'.")
        optim_wrapper = super().__call__(model)
        if isinstance(optim_wrapper, TransitionRateSchedulingMixin):
            optim_wrapper.bind_model(model)
        return optim_wrapper
