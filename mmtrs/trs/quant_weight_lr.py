"""Layer weights on an LR of their own: plain QAT's control of TR scheduling, and the
same split for the FP reference.

TRSOptimWrapper drives the quantized weights with the TALR U while BN, biases and
quantizer scales follow the ordinary LR. Does a gain come from U's adaptation (Eq. 11),
or only from giving the quantized weights a different LR than the rest?
`QuantWeightLRConstructor` gives the second without the first: the quantized weights' LR
is `quant_weight_lr_mult` x the ordinary LR, under the same schedule (MMEngine's
schedulers scale every group from its own initial LR).

    optim_wrapper = dict(type='OptimWrapper', constructor='QuantWeightLRConstructor',
                         quant_weight_lr_mult=0.1, optimizer=dict(type='SGD', lr=0.08))

`FloatWeightLRConstructor` gives the unquantized model the same two knobs: the weights of
the layers the default quantization policy would convert (`policy_layers`: every Conv2d
and Linear) get `weight_lr_mult` x the LR. An FP fine-tune with one LR for everything is
otherwise judged against QAT runs whose conv weights had a schedule of their own, and
can fall below them for that reason alone.

    optim_wrapper = dict(type='OptimWrapper', constructor='FloatWeightLRConstructor',
                         weight_lr_mult=0.33, optimizer=dict(type='SGD', lr=0.24))
"""
from mmengine.optim import DefaultOptimWrapperConstructor
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS

from ..quant import policy_layers, quantized_layers, trainable_quantized_layers, unwrap
from ..utils.config_schema import Number, Schema
from .param_groups import give_weights_own_groups

QUANT_WEIGHT_LR_SCHEMA = Schema('optim_wrapper', dict(
    quant_weight_lr_mult=Number(low=0, low_open=True, doc='LR of '
                                'the quantized weights / the ordinary LR'),
))
FLOAT_WEIGHT_LR_SCHEMA = Schema('optim_wrapper', dict(
    weight_lr_mult=Number(low=0, low_open=True, doc='LR of the weights of the layers '
                          'the default quantization policy would convert / the LR of the '
                          'rest (an unquantized model)'),
))


class _WeightLRConstructor(DefaultOptimWrapperConstructor):
    """DefaultOptimWrapperConstructor whose chosen layers' weights get param groups of
    their own (as TRSOptimWrapper gives them) with a multiple of the group's LR. The
    keys of `schema` are taken out of the optim_wrapper config before the wrapper is
    built; `mult_key` names the multiple."""
    schema, mult_key = None, None

    def __init__(self, optim_wrapper_cfg, paramwise_cfg=None):
        cfg = dict(optim_wrapper_cfg)
        self.options = self.schema.check(
            {k: cfg.pop(k) for k in list(self.schema.entries) if k in cfg}, 'optim_wrapper')
        self.lr_mult = float(self.options.get(self.mult_key, 1.0))
        super().__init__(cfg, paramwise_cfg)

    def layers(self, model):
        raise NotImplementedError

    def __call__(self, model):
        optim_wrapper = super().__call__(model)
        give_weights_own_groups(optim_wrapper.optimizer, self.layers(model),
                                lr=lambda i, group: group['lr'] * self.lr_mult)
        return optim_wrapper


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class QuantWeightLRConstructor(_WeightLRConstructor):
    """The quantized latent weights (QConv2d, QLinear) on `quant_weight_lr_mult` x the
    LR of their group."""
    schema, mult_key = QUANT_WEIGHT_LR_SCHEMA, 'quant_weight_lr_mult'

    def layers(self, model):
        return trainable_quantized_layers(
            model, 'optim_wrapper.constructor=QuantWeightLRConstructor',
            fix="use a quantized model (model.type='QuantizedDetector'), or "
                'FloatWeightLRConstructor for an unquantized one')


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class FloatWeightLRConstructor(_WeightLRConstructor):
    """An unquantized model's weights of the layers the default quantization policy would
    convert (frozen ones left out) on `weight_lr_mult` x the LR of their group."""
    schema, mult_key = FLOAT_WEIGHT_LR_SCHEMA, 'weight_lr_mult'

    def layers(self, model):
        module = unwrap(model)
        if quantized_layers(module):
            raise ValueError('optim_wrapper.constructor=FloatWeightLRConstructor is for an '
                             'unquantized model, and this one has quantized layers: use '
                             'QuantWeightLRConstructor (quant_weight_lr_mult) for QAT.')
        layers = [(n, m) for n, m in policy_layers(module) if m.weight.requires_grad]
        if not layers:
            raise ValueError('optim_wrapper.constructor=FloatWeightLRConstructor found no '
                             'trainable Conv2d or Linear layer in the model.')
        return layers
