from .quantized_detector import QuantizedDetector
from .relu_retina_head import ReLURetinaHead

__all__ = ['QuantizedDetector', 'ReLURetinaHead']
