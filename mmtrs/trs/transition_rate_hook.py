"""TransitionRateHook: logs the TR scheduling scalars (paper Fig. 3) through MessageHub."""
import math

import torch
from mmengine import dist
from mmengine.hooks import Hook
from mmengine.registry import HOOKS

from ..quant import quantized_layers
from ..utils.config_schema import Bool, Int, Number, Schema
from ..utils.rank_check import check_ranks_agree
from .controller import RunningTransitionRate
from .counter import TransitionCounter
from .optim_wrapper import TransitionRateSchedulingMixin

TR_HOOK_SCHEMA = Schema('TransitionRateHook', dict(
    interval=Int(low=1, example='50', doc='iterations between distance/per-layer logs'),
    near=Number(low=0, high=0.5, low_open=True, example='0.05',
                doc='distance to a transition point, in levels (at most 0.5)'),
    momentum=Number(low=0, high=1, high_open=True, example='0.9',
                    doc='m of Eq. 10 for plain optimizers'),
    per_layer=Bool(doc='also log per-layer values'),
    check_ranks=Bool(doc='check that ranks agree'),
))


@HOOKS.register_module()
class TransitionRateHook(Hook):
    """Log `tr/rate` (k), `tr/running_rate` (K), `tr/talr` (U), `tr/target` (R) and
    `tr/tracking_error` (|K - R| / R, K as Eq. 11 sees it, bias-corrected if enabled).

    With a TR-scheduling optim wrapper the values are read from it. With a plain
    optimizer (the SGD baseline) the hook measures k and K itself with the same counter
    and momentum, so SGD and SGDT runs can be plotted together; `tr/talr` and
    `tr/target` are then absent.

    Args:
        interval (int): every `interval` iterations also log the mean distance of the
            normalized latent weights to their nearest transition point
            (`tr/transition_dist`) and the fraction closer than `near`
            (`tr/near_transition`), the quantity of the paper's Fig. 3d.
        near (float): distance threshold in level units.
        momentum (float): m for the plain-optimizer measurement (Eq. 10).
        per_layer (bool): also log per-layer k (plain) or K and U (TRS) as
            `tr/layer/<name>/...`.
        check_ranks (bool): in multi-process runs, every `interval` iterations check
            that all ranks hold the same k, K, U and quantized weights (DDP keeps them
            equal; a divergence would silently void TR scheduling), else raise.
    """

    # After the optimizer step and the remedies' hooks (NORMAL, 50), which write frozen
    # weights back first; before LoggerHook (BELOW_NORMAL, 60), so this iteration's
    # values are the ones logged.
    priority = 55

    def __init__(self, interval=50, near=0.05, momentum=0.99, per_layer=False,
                 check_ranks=True):
        TR_HOOK_SCHEMA.check(dict(interval=interval, near=near, momentum=momentum,
                                  per_layer=per_layer, check_ranks=check_ranks),
                             'custom_hooks TransitionRateHook')
        self.interval = interval
        self.check_ranks = check_ranks
        self.near = near
        self.momentum = momentum
        self.per_layer = per_layer
        self._trs = None
        self._counter = None
        self._rate = None  # plain optimizers: k and K measured here (Eqs. 5, 10)
        self._ranks_agreed = False  # logged once, on the first successful check

    def before_train(self, runner):
        wrapper = runner.optim_wrapper
        if isinstance(wrapper, TransitionRateSchedulingMixin):
            self._trs = wrapper
            self._counter = wrapper.counter
        else:
            self._trs = None
            self._counter = TransitionCounter(quantized_layers(runner.model))
            self._rate = RunningTransitionRate(self.momentum)

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        hub = runner.message_hub
        if self._trs is not None:
            w = self._trs
            hub.update_scalar('train/tr/rate', w.transition_rate)
            hub.update_scalar('train/tr/running_rate', w.running_tr)
            hub.update_scalar('train/tr/talr', w.talr)
            if not w.measuring_target:  # no target yet while R^0 is being measured
                hub.update_scalar('train/tr/target', w.target_tr)
                err = w.tracking_error  # |K - R| / R; NaN once R reaches 0
                if math.isfinite(err):
                    hub.update_scalar('train/tr/tracking_error', err)
            if self.per_layer and self.every_n_train_iters(runner, self.interval):
                for name, _, K, U in w.layer_values():
                    hub.update_scalar(f'train/tr/layer/{name}/running_rate', K)
                    hub.update_scalar(f'train/tr/layer/{name}/talr', U)
        else:
            changed = self._counter.count()
            if changed is not None:
                numels = self._counter.numels
                self._rate.update(changed, numels)
                hub.update_scalar('train/tr/rate', float(self._rate.k[0]))
                hub.update_scalar('train/tr/running_rate', float(self._rate.K[0]))
                if self.per_layer and self.every_n_train_iters(runner, self.interval):
                    for name, c, n in zip(self._counter.names, changed, numels):
                        hub.update_scalar(f'train/tr/layer/{name}/rate', float(c / n))
        if self.every_n_train_iters(runner, self.interval) or runner.iter == 0:
            if self.check_ranks:
                self._check_ranks_agree(runner)
            distance, near = self._counter.transition_distance(self.near)
            hub.update_scalar('train/tr/transition_dist', distance)
            hub.update_scalar('train/tr/near_transition', near)

    @torch.no_grad()
    def _check_ranks_agree(self, runner):
        if dist.get_world_size() < 2:
            return
        if self._trs is not None:
            state = [self._trs.transition_rate, self._trs.running_tr, self._trs.talr]
        else:
            state = [float(self._rate.k[0]), float(self._rate.K[0]), 0.0]
        state += [float(m.weight.double().sum()) for m in self._counter.layers]
        world = check_ranks_agree(state, 'TR state or quantized weights', runner.iter + 1)
        if not self._ranks_agreed:
            runner.logger.info(f'TransitionRateHook: all {world} ranks hold the same '
                               'TR state and quantized weights (checked every '
                               f'{self.interval} iterations)')
            self._ranks_agreed = True
