"""TR scheduling (paper Sec. 4.2, Eqs. 5 and 10-12) as an MMEngine optimizer wrapper.

At every optimizer step t, before updating, the wrapper counts the level changes of the
last update (Eq. 5), updates K (Eq. 10) and U (Eq. 11) (mmtrs/trs/controller.py), then
steps the wrapped optimizer with

    w^(t+1) = w^t - U^t g^t                                         (Eq. 12)

for the quantized latent weights. g^t is the wrapped optimizer's own unit-LR direction
(SGD: momentum buffer; Adam/AdamW: m_hat / (sqrt(v_hat) + eps)). Eq. 12 is realised by
giving the quantized latent weights param groups of their own and substituting U^t for
their `lr` only for the duration of `optimizer.step()`. Their `lr` key therefore keeps
whatever MMEngine's LR schedulers write into it (the schedulers never see the TALR, and
the TALR never sees them); every other parameter trains with the ordinary scheduled LR.

The target R^t lives in the param-group key `target_tr`, so MMEngine's stock
ParamSchedulers drive it (`param_name='target_tr'`): warm-up, cosine, step, ...
"""
import torch
from mmengine import dist
from mmengine.logging import print_log
from mmengine.optim import AmpOptimWrapper, OptimWrapper
from mmengine.registry import OPTIM_WRAPPERS

from ..quant import quantized_layers, trainable_quantized_layers
from .controller import RunningTransitionRate, TALRController
from .counter import TransitionCounter
from .param_groups import give_weights_own_groups, stepping_with
from .settings import TRS_OPTIM_WRAPPER_SCHEMA, TRSettings

#: param-group key of the scheduled target TR R^t
TARGET_KEY = 'target_tr'
#: param-group key that marks (and indexes) the groups of the controlled weights
LAYER_KEY = 'trs_layer'


class TransitionRateSchedulingMixin:
    """TR scheduling for any MMEngine OptimWrapper (mixed in before the wrapper class).

    Takes the keys of `TRSettings` (mmtrs/trs/settings.py) besides the wrapper's own;
    `TRSOptimWrapperConstructor` binds it to the model's quantized layers.
    """

    def __init__(self, *args, **kwargs):
        tr_keys = {k: kwargs.pop(k) for k in list(kwargs)
                   if k in TRS_OPTIM_WRAPPER_SCHEMA.entries}
        self.settings = TRSettings(**tr_keys)
        super().__init__(*args, **kwargs)
        initial = 1.0 if self.settings.auto_target else float(self.settings.init_target)
        for group in self.optimizer.param_groups:
            group.setdefault(TARGET_KEY, initial)
        # MMEngine's OptimWrapper.param_groups also lists `base_param_settings`, a pseudo
        # group it adds when the optimizer starts with several groups (paramwise_cfg, as
        # in the Swin AdamW configs); the ParamSchedulers read `target_tr` from it too
        if getattr(self, 'base_param_settings', None) is not None:
            self.base_param_settings.setdefault(TARGET_KEY, initial)
        self._base_lr = self.optimizer.param_groups[0]['lr']
        self._counter = None
        # TR state (all of it goes into state_dict)
        self.steps = 0            # optimizer steps taken under this wrapper
        self._tr_scale = 1.0      # R^t = _tr_scale * group['target_tr']
        self.rate = None          # RunningTransitionRate: k, K (Eqs. 5, 10)
        self.talr_controller = None  # TALRController: U (Eq. 11)

    # ---- binding to the model ----------------------------------------------------------
    def bind_model(self, model):
        """Give each quantized latent weight a param group of its own (`trs_layer` key)."""
        # frozen layers (ResNet frozen_stages) never transition: scheduling them would
        # only dilute the TR of Eq. 5
        layers = trainable_quantized_layers(
            model, 'TRSOptimWrapper', fix="use a quantized model (model.type="
            "'QuantizedDetector' with a quant_cfg) or a plain optim_wrapper type='OptimWrapper'")
        frozen = [n for n, m in quantized_layers(model) if not m.weight.requires_grad]
        if frozen:
            print_log(f'TRSOptimWrapper: {len(frozen)} frozen quantized layers are not '
                      f'TR-scheduled (e.g. {frozen[0]})', logger='current')
        learnable = [n for n, m in layers if m.weight_quantizer.scale.requires_grad]
        if learnable and not self.settings.allow_learnable_weight_scale:
            raise ValueError(
                f'TR scheduling needs frozen weight scales (paper footnote 2), but '
                f'{len(learnable)} layers have learnable ones (e.g. {learnable[0]}): set '
                'model.quant_cfg.learn_weight_scale=False, or '
                'optim_wrapper.allow_learnable_weight_scale=True to experiment.')
        missing = give_weights_own_groups(self.optimizer, layers,
                                          **{LAYER_KEY: lambda i, group: i})
        if missing:
            raise ValueError(f'quantized weights not handed to the optimizer (frozen?): '
                             f'{missing[:3]}')
        # Eq. 5 is counted between the forward and the step: in the forward pass
        self._counter = TransitionCounter(layers, in_forward=True)
        s = self.settings
        n = len(layers) if s.per_layer else 1
        self.rate = RunningTransitionRate(s.tr_momentum, n)
        eta = None if s.auto_target else s.resolve_eta(
            s.talr0(self._base_lr), self._target(), self._base_lr)
        self.talr_controller = TALRController(
            n, s.talr0(self._base_lr), s.controller, eta, s.eta_log, s.log_step_clip,
            s.log_floor)
        print_log(f'TRSOptimWrapper: TR scheduling on {len(layers)} quantized layers, '
                  f'{int(self._counter.numels.sum())} weights, '
                  f'{"per-layer" if s.per_layer else "global"} TALR', logger='current')

    @property
    def is_bound(self):
        return self._counter is not None

    @property
    def counter(self):
        """The TransitionCounter of the controlled layers (after `bind_model`)."""
        if self._counter is None:
            raise RuntimeError(
                "TRSOptimWrapper is not bound to the model: add constructor="
                "'TRSOptimWrapperConstructor' to the optim_wrapper config.")
        return self._counter

    @property
    def _tr_groups(self):
        # Looked up each time: torch's Optimizer.load_state_dict replaces the group dicts.
        return [g for g in self.optimizer.param_groups if LAYER_KEY in g]

    # ---- the method --------------------------------------------------------------------
    def _target(self):
        """R^t: the scheduled `target_tr` of the controlled groups (times the measured
        scale in auto mode)."""
        return self._tr_scale * self._tr_groups[0][TARGET_KEY]

    @property
    def eta(self):
        """eta of Eq. 11 in use (None until an auto target is measured)."""
        return self.talr_controller.eta

    @property
    def measuring_target(self):
        """True until R^0 of init_target='auto' is known (it is set at the start of step
        number auto_target_iters + 1, from the transitions of the steps before)."""
        return self.settings.auto_target and self.steps <= self.settings.auto_target_iters

    def update_schedule(self, changed):
        """Eqs. 5, 10 and 11 from the per-layer counts of changed levels."""
        self.rate.update(changed, self.counter.numels)               # Eqs. 5, 10
        if self.measuring_target:
            return  # still measuring R^0 (this count is of an ordinary-LR update)
        self.talr_controller.update(                                 # Eq. 11
            self._target(), self.rate.as_seen(self.settings.bias_correction))

    def _finish_auto_target(self):
        """End of init_target='auto': R^0 := running TR measured under the ordinary LR."""
        s = self.settings
        measured = self._global(self.rate.corrected())
        if measured <= 0:
            raise RuntimeError(
                f'init_target=auto measured no transition in {s.auto_target_iters} steps '
                '(running TR 0): the LR is too small to move any quantized weight. Raise '
                'the LR, optim_wrapper.auto_target_iters, or set optim_wrapper.init_target.')
        init_target = float(s.auto_target_scale) * measured
        self._tr_scale = init_target / self._tr_groups[0][TARGET_KEY]
        init_talr = s.talr0(self._tr_groups[0]['lr'])
        self.talr_controller.reset(init_talr, s.resolve_eta(init_talr, init_target,
                                                             self._base_lr))
        gain = (f'eta_log {float(s.eta_log):.3g}' if s.controller == 'log'
                else f'eta {self.eta:.3e}')
        print_log(f'TRSOptimWrapper: measured running TR {measured:.3e} over '
                  f'{s.auto_target_iters} steps; initial target {init_target:.3e} '
                  f'(x{float(s.auto_target_scale):g}); TALR starts at {init_talr:.3e}, '
                  f'{gain}', logger='current')

    def step(self, **kwargs):
        changed = self.counter.count()   # levels of w^t vs w^(t-1)
        if changed is not None:
            if dist.get_world_size() > 1:
                # Weights are identical across ranks under DDP, so the counts are too;
                # averaging keeps every rank's k, K, U equal even if they ever drift.
                dist.all_reduce(changed, op='mean')
            self.update_schedule(changed)
        s = self.settings
        if s.auto_target and self.steps == s.auto_target_iters:
            self._finish_auto_target()
        groups = self._tr_groups
        if s.auto_target and self.steps < s.auto_target_iters:
            lrs = [g['lr'] for g in groups]    # measuring R^0: the ordinary LR
        else:
            U = self.talr_controller.U
            lrs = [float(U[g[LAYER_KEY] if s.per_layer else 0]) for g in groups]
        with stepping_with(groups, lrs):                            # Eq. 12
            super().step(**kwargs)
        self.steps += 1

    # ---- read-only views (global values) -----------------------------------------------
    def _global(self, t):
        if t is None:
            return float('nan')
        if not self.settings.per_layer:
            return float(t[0])
        w = self.counter.numels
        return float((t * w).sum() / w.sum())

    @property
    def transition_rate(self):
        """k: fraction of controlled weights that changed level in the last update."""
        return self._global(self.rate.k)

    @property
    def running_tr(self):
        """K: running transition rate (Eq. 10)."""
        return self._global(self.rate.K)

    @property
    def talr(self):
        """U: transition-adaptive LR (Eq. 11); the ordinary LR while measuring."""
        if self.measuring_target:
            return float(self._tr_groups[0]['lr'])
        return self._global(self.talr_controller.U)

    @property
    def target_tr(self):
        """R: the current scheduled target TR."""
        return self._target()

    @property
    def tracking_error(self):
        """|K - R| / R with the K that Eq. 11 sees (bias-corrected if enabled): how well
        the running TR follows its target. NaN while R^0 is measured or when R = 0."""
        if self.measuring_target or self.rate is None:
            return float('nan')
        K = self.rate.as_seen(self.settings.bias_correction)
        R = self._target()
        return abs(self._global(K) - R) / R if R > 0 else float('nan')

    def layer_values(self):
        """Per-layer (name, k, K, U) for logging; U is shared in global mode."""
        per_layer = self.settings.per_layer
        rows = []
        for i, name in enumerate(self.counter.names):
            j = i if per_layer else 0
            rows.append((name, float(self.rate.k[i]) if per_layer else None,
                         float(self.rate.K[j]), float(self.talr_controller.U[j])))
        return rows

    # ---- checkpoints ---------------------------------------------------------------------
    def state_dict(self):
        state = super().state_dict()
        counter = self.counter
        state['trs'] = dict(
            steps=self.steps, num_updates=self.rate.num_updates, tr_scale=self._tr_scale,
            eta=self.eta, K=self.rate.K.clone(), U=self.talr_controller.U.clone(),
            k=self.rate.k.clone(), per_layer=self.settings.per_layer,
            layer_names=list(counter.names),
            prev_levels=None if counter.prev is None else [t.clone() for t in counter.prev])
        return state

    def load_state_dict(self, state_dict):
        counter = self.counter
        trs = state_dict.pop('trs', None)
        if trs is None:
            raise RuntimeError(
                'The checkpoint has no TR-scheduling state: it was written by a plain '
                'optimizer wrapper, so its optimizer state (param groups, momenta) does not '
                'match TRSOptimWrapper. To continue training that model with TR '
                'scheduling, start a new run from its weights with `load_from=CKPT` '
                '(no --resume).')
        if trs['layer_names'] != counter.names or trs['per_layer'] != self.settings.per_layer:
            raise RuntimeError(
                'The checkpoint\'s TR-scheduling state was written for a different set of '
                'quantized layers or per_layer mode; resume with the same config.')
        super().load_state_dict(state_dict)
        self.steps = trs['steps']
        self.rate.num_updates = trs['num_updates']
        self._tr_scale = trs['tr_scale']
        self.talr_controller.eta = trs['eta']
        self.rate.K = trs['K'].clone()
        self.talr_controller.U = trs['U'].clone()
        self.rate.k = trs['k'].clone()
        prev = trs['prev_levels']
        counter.prev = None if prev is None else [t.clone() for t in prev]


@OPTIM_WRAPPERS.register_module()
class TRSOptimWrapper(TransitionRateSchedulingMixin, OptimWrapper):
    """OptimWrapper with TR scheduling; see TransitionRateSchedulingMixin."""


@OPTIM_WRAPPERS.register_module()
class AmpTRSOptimWrapper(TransitionRateSchedulingMixin, AmpOptimWrapper):
    """AmpOptimWrapper with TR scheduling (needs a device AmpOptimWrapper supports).

    A step that the loss scaler skips (inf/NaN gradients) leaves the weights unchanged,
    so the next count sees no transitions from it, as it should.
    """
