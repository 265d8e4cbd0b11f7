from .quantized_detector import QuantizedDetector

__all__ = ['QuantizedDetector']
