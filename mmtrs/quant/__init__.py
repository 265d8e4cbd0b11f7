from .calibrate import calibrate_quantizers
from .coverage import Coverage
from .policy import DEFAULT_QUANT_CFG, build_quant_cfg, quantize_model, quantized_layers
from .qconv import QConv2d
from .qlinear import QLinear
from .quantizer import NegativeInputError, Quantizer, check_bits, quant_range

__all__ = ['Quantizer', 'QConv2d', 'QLinear', 'Coverage', 'NegativeInputError', 'check_bits',
           'quant_range',
           'quantize_model', 'quantized_layers', 'build_quant_cfg', 'DEFAULT_QUANT_CFG',
           'calibrate_quantizers']
