"""The oscillation remedies that act on weights between steps, as MMEngine hooks:
oscillation tracking and iterative freezing (Nagel et al., ICML 2022) and LTS freezing
(SpQAT). The loss-based remedies are in `regularizer_hooks.py`.

Each works with any optimizer wrapper (plain SGD/Adam or TR scheduling). Hook order
inside an iteration: the model's train_step has already taken the optimizer step; these
hooks (priority NORMAL) first write frozen weights back, then read the new levels, before
TransitionRateHook (priority 55) counts transitions and CheckpointHook (VERY_LOW) saves.
Their per-weight state goes into the checkpoint (`before_save_checkpoint`), so --resume
continues exactly.
"""
import torch
from mmengine import dist
from mmengine.hooks import Hook
from mmengine.registry import HOOKS

from ..quant import LAYER_KINDS, layer_kind, normalized_weight, trainable_quantized_layers
from ..utils.config_schema import Bits, Bool, Int, Number, OneOf, Schema, fraction
from ..utils.rank_check import check_ranks_agree
from .freezing import attach_freezer, detach_freezer
from .schedules import cosine_anneal, lts_tau
from .state import LTSState, OscillationState


#: interval / check_ranks of every per-weight-state hook (OscillationTracking/Freezing, LTS)
PER_WEIGHT_HOOK_SCHEMA = Schema('per-weight-state hook', dict(
    interval=Int(low=1, example='50', doc='iterations between multi-process state checks'),
    check_ranks=Bool(doc='check that ranks hold the same per-weight state'),
))
OSC_TRACKING_HOOK_SCHEMA = Schema('OscillationTrackingHook', dict(
    momentum=Number(low=0, high=1, low_open=True, high_open=True, example='0.01',
                    doc='m of the oscillation-frequency EMA (Nagel et al.)'),
    osc_threshold=fraction(example='0.005', doc='frequency above which a weight oscillates'),
))
OSC_FREEZING_HOOK_SCHEMA = Schema('OscillationFreezingHook', dict(
    start=fraction(example='0.25', doc='fraction of training before freezing'),
    threshold_start=fraction(example='0.1', doc='freezing threshold at `start`'),
    threshold_end=fraction(example='0.01', doc='freezing threshold at the end'),
    max_bits=Bits(doc='only layers with at most this many weight bits'),
))
LTS_FREEZING_HOOK_SCHEMA = Schema('LTSFreezingHook', dict(
    momentum=Number(low=0, high=1, high_open=True, example='0.99',
                    doc='m of the distance EMA'),
    warmup=fraction(example='0.2', doc='fraction of training before freezing'),
    tau_schedule=OneOf('linear', 'sine', 'constant', doc='schedule of tau'),
    tau_max=Number(low=0, low_open=True, example='1.0', doc='final tau, in bin widths'),
    max_bits=Bits(doc='only layers with at most this many weight bits'),
))


class _PerWeightStateHook(Hook):
    """Binds per-weight state to the model's trainable quantized layers, keeps it in
    the checkpoint, and checks that all ranks hold the same state.

    Subclasses set `ckpt_key` and implement `_new_state(layer, levels)` and
    `_update(runner, t)`; `_freezing_layers()` lists the layers they may freeze.
    """

    priority = 'NORMAL'
    ckpt_key = None
    freeze_by_level = None  # None: does not freeze; True/False: FrozenWeights mode

    def __init__(self, interval=50, check_ranks=True):
        PER_WEIGHT_HOOK_SCHEMA.check(dict(interval=interval, check_ranks=check_ranks),
                                     f'custom_hooks {type(self).__name__}')
        self.interval = interval
        self.check_ranks = check_ranks
        self.layers = []
        self.states = None
        self.freezers = {}
        self._loaded = None
        self._ranks_agreed = False

    # ---- binding --------------------------------------------------------------------
    def before_train(self, runner):
        self.layers = trainable_quantized_layers(runner.model, type(self).__name__)
        if self.freeze_by_level is not None:
            for name, layer in self._freezing_layers():
                self.freezers[name] = attach_freezer(name, layer, self.freeze_by_level)
        if self._loaded is not None:   # resuming: the scales are loaded, levels are valid
            self._init_states()
            self._load_states(self._loaded)
            self._loaded = None

    def after_train(self, runner):
        for _, layer in self._freezing_layers():
            detach_freezer(layer)
        self.freezers = {}

    def _freezing_layers(self):
        return []

    def _levels(self, layer):
        return layer.weight_quantizer.discretize(layer.weight.detach())

    def _init_states(self):
        self.states = {n: self._new_state(m, self._levels(m)) for n, m in self.layers}

    # ---- the step -----------------------------------------------------------------------
    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        for fw in self.freezers.values():
            fw.restore()   # undo what the optimizer step did to frozen weights
        if self.states is None:
            # first step: scales are set by the first forward, so levels exist only now
            self._init_states()
        else:
            self._update(runner, runner.iter)
        if self.check_ranks and (self.every_n_train_iters(runner, self.interval)
                                 or runner.iter == 0):
            self._check_ranks_agree(runner)

    def frozenfraction(self):
        total = sum(m.weight.numel() for _, m in self.layers)
        return sum(fw.count for fw in self.freezers.values()) / total

    # ---- checkpoints ----------------------------------------------------------------------
    def before_save_checkpoint(self, runner, checkpoint):
        if self.states is None:
            return
        checkpoint[self.ckpt_key] = dict(
            layers={n: s.state_dict() for n, s in self.states.items()},
            frozen={n: fw.state_dict() for n, fw in self.freezers.items()})

    def after_load_checkpoint(self, runner, checkpoint):
        if runner._resume and self.ckpt_key in checkpoint:
            self._loaded = checkpoint[self.ckpt_key]

    def _load_states(self, saved):
        if set(saved['layers']) != set(self.states) or set(saved['frozen']) != set(self.freezers):
            raise RuntimeError(f'{type(self).__name__}: the checkpoint state was written for '
                               'other quantized layers; resume with the same config.')
        for name, state in saved['layers'].items():
            self.states[name].load_state_dict(state)
        for name, state in saved['frozen'].items():
            self.freezers[name].load_state_dict(state)

    # ---- multi-process -----------------------------------------------------------------
    @torch.no_grad()
    def _check_ranks_agree(self, runner):
        if dist.get_world_size() < 2 or self.states is None:
            return
        sums = []
        for name, fw in self.freezers.items():
            idx = torch.arange(fw.mask.numel(), dtype=torch.float64)
            sums += [float(fw.mask.sum()), float((fw.mask.flatten().double() * idx).sum())]
        for state in self.states.values():
            sums += [float(t.double().sum()) for t in state.state_dict().values()
                     if isinstance(t, torch.Tensor)]
        world = check_ranks_agree(sums, f'{type(self).__name__}: per-weight state and '
                                  'frozen masks', runner.iter + 1)
        if not self._ranks_agreed:
            runner.logger.info(f'{type(self).__name__}: all {world} ranks hold '
                               'identical per-weight state and frozen masks (checked every '
                               f'{self.interval} iterations)')
            self._ranks_agreed = True


@HOOKS.register_module()
class OscillationTrackingHook(_PerWeightStateHook):
    """Measures weight oscillations (Nagel et al. 2022) under any optimizer, logged as
    `osc/oscillating` (fraction of weights with frequency f > `osc_threshold`), the same
    split by layer kind (`osc/oscillating_depthwise`, `_pointwise`, `_other`) and the mean
    frequency `osc/mean_freq`. Tracked on training steps only (hooks of the train loop).

    Args:
        momentum (float): m of f <- m * osc + (1 - m) * f. Nagel et al.: 0.001 (90 epochs
            of ImageNet); their public code defaults to 0.01; short runs need larger m.
        osc_threshold (float): f above which a weight counts as oscillating (0.005).
        interval (int), check_ranks (bool): multi-process state check period.
    """

    ckpt_key = 'mmtrs_oscillation'

    def __init__(self, momentum=0.001, osc_threshold=0.005, interval=50, check_ranks=True):
        super().__init__(interval, check_ranks)
        OSC_TRACKING_HOOK_SCHEMA.check(dict(momentum=momentum, osc_threshold=osc_threshold),
                                       f'custom_hooks {type(self).__name__}')
        self.momentum = float(momentum)
        self.osc_threshold = float(osc_threshold)

    def _new_state(self, layer, levels):
        return OscillationState(levels, self.momentum)

    def _update(self, runner, t):
        for name, layer in self.layers:
            self.states[name].update(self._levels(layer))
        self._log(runner)

    def _log(self, runner):
        hub = runner.message_hub
        count = dict.fromkeys(LAYER_KINDS, 0)
        total = dict.fromkeys(LAYER_KINDS, 0)
        freq_sum = 0.0
        for name, layer in self.layers:
            f = self.states[name].freq
            kind = layer_kind(layer)
            count[kind] += int((f > self.osc_threshold).sum())
            total[kind] += f.numel()
            freq_sum += float(f.double().sum())
        n = sum(total.values())
        hub.update_scalar('train/osc/oscillating', sum(count.values()) / n)
        hub.update_scalar('train/osc/mean_freq', freq_sum / n)
        for kind in LAYER_KINDS:
            if total[kind]:
                hub.update_scalar(f'train/osc/oscillating_{kind}', count[kind] / total[kind])


@HOOKS.register_module()
class OscillationFreezingHook(OscillationTrackingHook):
    """Iterative weight freezing (Nagel et al. 2022, Sec. 4.2; public code
    `utils/oscillation_tracking_utils.py`, `UpdateFreezingThreshold`), with tracking.

    The threshold f_th(t) is off (no freezing) for the first `start` of training, then
    cosine from `threshold_start` to `threshold_end`. From then on an EMA of the integer
    level is kept (same m, initialised to the current level); a weight with f > f_th is
    frozen permanently at round(EMA level) (taken before this step's EMA update, as in
    the public code): its forward uses that level whatever its latent value, and it
    receives no update. Only layers with at most `max_bits` weight bits (so not the 8-bit
    first/last layers). Frozen weights leave N of Eq. 5 under TR scheduling. Logs
    `osc/threshold` and `osc/frozen` (fraction of all tracked weights).

    Args (beyond OscillationTrackingHook's):
        start (float): fraction of training before freezing starts (0.25).
        threshold_start, threshold_end (float): 0.1 -> 0.01 (Nagel et al.'s defaults;
            their ablation prefers 0.04 -> 0.01).
        max_bits (int): 4.
    """

    ckpt_key = 'mmtrs_oscillation_freezing'
    freeze_by_level = True

    def __init__(self, momentum=0.001, osc_threshold=0.005, start=0.25, threshold_start=0.1,
                 threshold_end=0.01, max_bits=4, interval=50, check_ranks=True):
        super().__init__(momentum, osc_threshold, interval, check_ranks)
        OSC_FREEZING_HOOK_SCHEMA.check(dict(
            start=start, threshold_start=threshold_start, threshold_end=threshold_end,
            max_bits=max_bits), f'custom_hooks {type(self).__name__}')
        self.start = float(start)
        self.threshold_start = float(threshold_start)
        self.threshold_end = float(threshold_end)
        self.max_bits = max_bits

    def _freezing_layers(self):
        return [(n, m) for n, m in self.layers if m.weight_quantizer.bits <= self.max_bits]

    def threshold(self, t, total):
        """f_th(t); None while freezing is off."""
        return cosine_anneal(t, total, self.start, self.threshold_start, self.threshold_end)

    def _update(self, runner, t):
        th = self.threshold(t, runner.max_iters)
        for name, layer in self.layers:
            state = self.states[name]
            fw = self.freezers.get(name)
            frozen_level = None if state.ema_level is None else state.ema_level.round()
            state.update(self._levels(layer), track_ema_level=th is not None and fw is not None)
            if th is None or fw is None or frozen_level is None:
                continue
            new = (state.freq > th) & ~fw.mask
            if fw.freeze(new, levels=frozen_level):
                state.set_levels(new, frozen_level)
        self._log(runner)
        hub = runner.message_hub
        if th is not None:
            hub.update_scalar('train/osc/threshold', th)
        hub.update_scalar('train/osc/frozen', self.frozenfraction())


@HOOKS.register_module()
class LTSFreezingHook(_PerWeightStateHook):
    """SpQAT's LTS freezing: freeze weights that have settled near their
    level.

    Per weight, in level units: dist <- m * dist + (1 - m) * |gamma * w / s - q|, reset to
    1 (the bin width) when the level changed this step. After the warm-up, a weight with
    dist <= tau(t) is frozen permanently: it keeps its latent value and gets zero
    gradient. tau rises 0 -> `tau_max` linearly over the rest of training ('sine' and
    'constant' are options). Logs `lts/frozen` (the paper's "gradient sparsity") and
    `lts/tau`. Frozen weights leave N of Eq. 5 under TR scheduling.

    Args:
        momentum (float): m of the distance EMA (0.99).
        warmup (float): fraction of training before freezing starts (0.2).
        tau_schedule (str): 'linear', 'sine' or 'constant'.
        tau_max (float): final tau, in bin widths (1.0).
        max_bits (int): only layers with at most this many weight bits (4).
    """

    ckpt_key = 'mmtrs_lts_freezing'
    freeze_by_level = False

    def __init__(self, momentum=0.99, warmup=0.2, tau_schedule='linear', tau_max=1.0,
                 max_bits=4, interval=50, check_ranks=True):
        super().__init__(interval, check_ranks)
        LTS_FREEZING_HOOK_SCHEMA.check(dict(
            momentum=momentum, warmup=warmup, tau_schedule=tau_schedule, tau_max=tau_max,
            max_bits=max_bits), f'custom_hooks {type(self).__name__}')
        self.momentum = float(momentum)
        self.warmup = float(warmup)
        self.tau_schedule = tau_schedule
        self.tau_max = float(tau_max)
        self.max_bits = max_bits

    def _freezing_layers(self):
        return [(n, m) for n, m in self.layers if m.weight_quantizer.bits <= self.max_bits]

    def tau(self, t, total):
        return lts_tau(t, total, self.warmup, self.tau_schedule, self.tau_max)

    def _new_state(self, layer, levels):
        return LTSState(levels, self.momentum)

    def _update(self, runner, t):
        tau = self.tau(t, runner.max_iters)
        for name, layer in self.layers:
            state = self.states[name]
            state.update(normalized_weight(layer), self._levels(layer))
            fw = self.freezers.get(name)
            if tau is not None and fw is not None:
                fw.freeze(state.dist <= tau)
        hub = runner.message_hub
        if tau is not None:
            hub.update_scalar('train/lts/tau', tau)
        hub.update_scalar('train/lts/frozen', self.frozenfraction())
