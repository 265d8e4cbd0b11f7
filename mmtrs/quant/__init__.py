"""Quantization: the quantizer of Eq. 13, the quantized layers, the policy that converts
a model, and the geometry of weights relative to their grid."""
from .calibrate import calibrate_quantizers
from .coverage import Coverage
from .geometry import LAYER_KINDS, layer_kind, normalized_weight, transition_distance
from .layers import (QUANT_LAYER_TYPES, QUANTIZED_LAYERS, num_frozen, quantized_layers,
                     trainable_quantized_layers, unwrap)
from .policy import policy_layers, quantize_model
from .policy_config import DEFAULT_QUANT_CFG, QUANT_CFG_SCHEMA, build_quant_cfg
from .qconv import QConv2d
from .qlinear import QLinear
from .quantizer import NegativeInputError, Quantizer, check_bits, quant_range

__all__ = ['Quantizer', 'QConv2d', 'QLinear', 'Coverage', 'NegativeInputError', 'check_bits',
           'quant_range', 'policy_layers', 'quantize_model', 'quantized_layers',
           'trainable_quantized_layers', 'unwrap', 'num_frozen', 'build_quant_cfg',
           'DEFAULT_QUANT_CFG', 'QUANT_CFG_SCHEMA', 'QUANT_LAYER_TYPES', 'QUANTIZED_LAYERS',
           'calibrate_quantizers', 'LAYER_KINDS', 'layer_kind', 'normalized_weight',
           'transition_distance']
