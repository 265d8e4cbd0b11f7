from .calibration_hook import QuantizerCalibrationHook
from .finite_loss_hook import FiniteLossHook
from .regularizer_hooks import (BinRegularizationHook, OscillationDampeningHook,
                                QuantRegularizerHook)
from .seed_method_hooks import LTSFreezingHook, OscillationFreezingHook, OscillationTrackingHook
from .quant_weight_lr import QuantWeightLRConstructor
from .step_size_hook import EffectiveStepSizeHook
from .transition_counter import TransitionCounter
from .transition_rate_hook import TransitionRateHook
from .trs_optim_wrapper import (AmpTRSOptimWrapper, TransitionRateSchedulingMixin,
                                TRSOptimWrapper, TRSOptimWrapperConstructor)

__all__ = ['QuantizerCalibrationHook', 'FiniteLossHook', 'TransitionCounter',
           'TransitionRateHook', 'TRSOptimWrapper', 'AmpTRSOptimWrapper',
           'TRSOptimWrapperConstructor', 'TransitionRateSchedulingMixin',
           'OscillationTrackingHook', 'OscillationFreezingHook', 'LTSFreezingHook',
           'QuantRegularizerHook', 'OscillationDampeningHook', 'BinRegularizationHook',
           'EffectiveStepSizeHook', 'QuantWeightLRConstructor']
