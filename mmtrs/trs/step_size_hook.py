"""EffectiveStepSizeHook: the step sizes of the paper's Figs. 1c and 2b, per layer kind.

Every `interval` iterations, across one optimizer step t-1 -> t, over the quantized
layers' weights (normalized units, x = gamma * w / s, in level units):

    latent step    = mean |x(t) - x(t-1)|            (latent weights)
    quantized step = mean |x_d(t) - x_d(t-1)|        (integer levels; x_q = x_d / gamma)

logged as `step/latent`, `step/quantized` and per layer kind
(`step/latent_depthwise`, `step/quantized_pointwise`, ...; kinds of
`mmtrs.quant.layer_kind`). Under plain SGD the quantized step is an unreliable function of the latent
one (the paper's motivation); TR scheduling controls the quantized step directly. At the
end of training the distances of the normalized latent weights to their nearest
transition point (paper Fig. 3c-d) are written to `<work_dir>/latent_near_transition.json`
as a histogram per layer kind.
"""
import json
import os.path as osp

import torch
from mmengine.hooks import Hook
from mmengine.registry import HOOKS

from ..quant import (LAYER_KINDS, layer_kind, normalized_weight, quantized_layers,
                     transition_distance)


@HOOKS.register_module()
class EffectiveStepSizeHook(Hook):
    """Log latent and quantized step sizes (normalized level units) by layer kind.

    Args:
        interval (int): measure the step of every `interval`-th iteration.
        bins (int): histogram bins of the final distance-to-transition file (0 to 0.5).
    """

    priority = 55  # as TransitionRateHook: before LoggerHook, so this step is logged

    def __init__(self, interval=10, bins=25):
        if not isinstance(interval, int) or isinstance(interval, bool) or interval < 1:
            raise ValueError(f'custom_hooks EffectiveStepSizeHook.interval={interval!r}: '
                             'use an integer >= 1')
        if not isinstance(bins, int) or isinstance(bins, bool) or bins < 1:
            raise ValueError(f'custom_hooks EffectiveStepSizeHook.bins={bins!r}: use an '
                             'integer >= 1')
        self.interval = interval
        self.bins = bins
        self._before = None

    def _layers(self, runner):
        return [(layer_kind(m), m) for _, m in quantized_layers(runner.model)]

    @torch.no_grad()
    def before_train_iter(self, runner, batch_idx, data_batch=None):
        self._before = None
        if (runner.iter + 1) % self.interval == 0:
            snap = []
            for kind, m in self._layers(runner):
                snap.append((kind, normalized_weight(m),
                             m.weight_quantizer.discretize(m.weight.detach())))
            self._before = snap

    @torch.no_grad()
    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if self._before is None:
            return
        sums = {k: [0.0, 0.0, 0] for k in LAYER_KINDS}   # latent, quantized, count
        for (kind, x0, d0), (_, m) in zip(self._before, self._layers(runner)):
            x1 = normalized_weight(m)
            d1 = m.weight_quantizer.discretize(m.weight.detach())
            s = sums[kind]
            s[0] += float((x1 - x0).abs().sum())
            s[1] += float((d1 - d0).abs().sum())
            s[2] += x1.numel()
        self._before = None
        hub = runner.message_hub
        n = sum(s[2] for s in sums.values())
        hub.update_scalar('train/step/latent', sum(s[0] for s in sums.values()) / n)
        hub.update_scalar('train/step/quantized', sum(s[1] for s in sums.values()) / n)
        for kind, (lat, qua, cnt) in sums.items():
            if cnt:
                hub.update_scalar(f'train/step/latent_{kind}', lat / cnt)
                hub.update_scalar(f'train/step/quantized_{kind}', qua / cnt)

    @torch.no_grad()
    def after_train(self, runner):
        """Histogram of |x - nearest transition point| (0..0.5 levels) per layer kind."""
        edges = torch.linspace(0, 0.5, self.bins + 1)
        hist = {k: torch.zeros(self.bins, dtype=torch.float64) for k in LAYER_KINDS}
        for kind, m in self._layers(runner):
            d = transition_distance(normalized_weight(m), m.weight_quantizer)
            idx = torch.bucketize(d.flatten().clamp(max=0.5), edges[1:-1])
            hist[kind] += torch.bincount(idx, minlength=self.bins).double()
        out = dict(edges=edges.tolist(),
                   fraction={k: (h / h.sum()).tolist() if h.sum() > 0 else None
                             for k, h in hist.items()})
        with open(osp.join(runner.work_dir, 'latent_near_transition.json'), 'w') as f:
            json.dump(out, f)
