"""Plain QAT with the quantized latent weights on an LR of their own: the control of TR
scheduling.

TRSOptimWrapper drives the quantized weights with the TALR U while BN, biases and
quantizer scales follow the ordinary LR. Does a gain come from U's adaptation (Eq. 11),
or only from giving the quantized weights a different LR than the rest? This
constructor gives the second without the first: the quantized weights' LR is
`quant_weight_lr_mult` x the ordinary LR, under the same schedule (MMEngine's schedulers
scale every group from its own initial LR).

    optim_wrapper = dict(type='OptimWrapper', constructor='QuantWeightLRConstructor',
                         quant_weight_lr_mult=0.1, optimizer=dict(type='SGD', lr=0.08))
"""
from mmengine.optim import DefaultOptimWrapperConstructor
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS

from ..quant import trainable_quantized_layers
from ..utils.config_schema import Number, Schema
from .param_groups import give_weights_own_groups

QUANT_WEIGHT_LR_SCHEMA = Schema('optim_wrapper', dict(
    quant_weight_lr_mult=Number(low=0, low_open=True, doc='LR of '
                                'the quantized weights / the ordinary LR'),
))


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class QuantWeightLRConstructor(DefaultOptimWrapperConstructor):
    """DefaultOptimWrapperConstructor whose quantized latent weights (QConv2d, QLinear)
    get param groups of their own (as TRSOptimWrapper gives them) with
    `quant_weight_lr_mult` x the group's LR (an optim_wrapper key, taken out before the
    wrapper is built)."""

    def __init__(self, optim_wrapper_cfg, paramwise_cfg=None):
        cfg = dict(optim_wrapper_cfg)
        values = QUANT_WEIGHT_LR_SCHEMA.check(
            dict(quant_weight_lr_mult=cfg.pop('quant_weight_lr_mult', 1.0)), 'optim_wrapper')
        self.quant_weight_lr_mult = float(values['quant_weight_lr_mult'])
        super().__init__(cfg, paramwise_cfg)

    def __call__(self, model):
        optim_wrapper = super().__call__(model)
        layers = trainable_quantized_layers(
            model, 'optim_wrapper.constructor=QuantWeightLRConstructor',
            fix="use a quantized model (model.type='QuantizedDetector')")
        give_weights_own_groups(optim_wrapper.optimizer, layers,
                                lr=lambda i, group: group['lr'] * self.quant_weight_lr_mult)
        return optim_wrapper
