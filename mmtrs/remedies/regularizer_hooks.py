"""Loss-based oscillation remedies as hooks: oscillation dampening (Nagel et al. 2022)
and OBR (Quantization Variation, Huang et al. 2023).

The mechanism: in `before_train` the hook registers a forward hook on the (unwrapped)
model that, on training forwards in `mode='loss'`, adds `lambda(t) * sum over quantized
layers of penalty(layer)` to the detector's loss dict under its own key. MMEngine's
`parse_losses` then sums it into the total and logs it like any detector loss, and
under DDP it is computed inside the wrapped forward, so gradients are reduced as usual.
Works with any detector and any optimizer wrapper (plain, or TR scheduling).
"""
import torch
from mmengine.hooks import Hook
from mmengine.registry import HOOKS

from ..quant import trainable_quantized_layers, unwrap
from ..utils.config_schema import Number, Schema, fraction
from .losses import bin_regularization_loss, dampening_loss
from .schedules import cosine_anneal

QUANT_REGULARIZER_HOOK_SCHEMA = Schema('regularizer hook', dict(  # Dampening, BinRegularization
    lambda_max=Number(low=0, example='0.1', doc='final weight of the regularizer'),
    start=fraction(example='0.25', doc='fraction of training before the regularizer'),
))


class QuantRegularizerHook(Hook):
    """Base: adds `loss_key` = lambda(t) * sum_layers penalty(layer) to the losses.

    lambda(t) = 0 for the first `start` of training, then cosine 0 -> `lambda_max`.
    Subclasses set `loss_key` and `penalty`.
    """

    priority = 'NORMAL'
    loss_key = None
    penalty = None

    def __init__(self, lambda_max, start=0.25):
        QUANT_REGULARIZER_HOOK_SCHEMA.check(dict(lambda_max=lambda_max, start=start),
                                            f'custom_hooks {type(self).__name__}')
        self.lambda_max = float(lambda_max)
        self.start = float(start)
        self.lam = 0.0
        self.layers = []
        self._handle = None

    def weight(self, t, total):
        """lambda(t)."""
        lam = cosine_anneal(t, total, self.start, 0.0, self.lambda_max)
        return 0.0 if lam is None else lam

    def before_train(self, runner):
        model = unwrap(runner.model)
        self.layers = [m for _, m in trainable_quantized_layers(model, type(self).__name__)]
        self._handle = model.register_forward_hook(self._add_loss, with_kwargs=True)

    def after_train(self, runner):
        if self._handle is not None:
            self._handle.remove()
            self._handle = None

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        self.lam = self.weight(runner.iter, runner.max_iters)

    def regularization(self):
        """sum over quantized layers of the penalty (without lambda)."""
        return sum(type(self).penalty(m) for m in self.layers)

    def _add_loss(self, module, args, kwargs, output):
        if kwargs.get('mode') != 'loss' or not module.training or not isinstance(output, dict):
            return None
        if self.lam > 0:
            output[self.loss_key] = self.lam * self.regularization()
        else:  # nothing to compute yet; logged as 0 so the key is there from the start
            output[self.loss_key] = torch.zeros((), device=self.layers[0].weight.device)
        return output


@HOOKS.register_module()
class OscillationDampeningHook(QuantRegularizerHook):
    """Oscillation dampening (Nagel et al. 2022, Sec. 4.1): loss `loss_dampen`.

    Args:
        lambda_max (float): final weight; 0.1 in the public code, 1e-3 preferred by the
            paper's ablation. Default 0.1.
        start (float): fraction of training with lambda = 0 (0.25).
    """

    loss_key = 'loss_dampen'
    penalty = staticmethod(dampening_loss)

    def __init__(self, lambda_max=0.1, start=0.25):
        super().__init__(lambda_max, start)


@HOOKS.register_module()
class BinRegularizationHook(QuantRegularizerHook):
    """Oscillation-aware bin regularisation, OBR (Quantization Variation, Huang et al.
    2023):
    loss `loss_obr`.

    Args:
        lambda_max (float): final weight (0.01).
        start (float): fraction of training with lambda = 0 (0.25).
    """

    loss_key = 'loss_obr'
    penalty = staticmethod(bin_regularization_loss)

    def __init__(self, lambda_max=0.01, start=0.25):
        super().__init__(lambda_max, start)
