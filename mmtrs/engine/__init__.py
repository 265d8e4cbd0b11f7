"""Runner hooks that are not specific to one method: stopping at a non-finite loss and
calibrating quantizer scales before evaluation."""
from .calibration_hook import QuantizerCalibrationHook
from .finite_loss_hook import FiniteLossHook

__all__ = ['QuantizerCalibrationHook', 'FiniteLossHook']
