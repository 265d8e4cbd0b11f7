"""Transition-rate scheduling (paper Sec. 4.2): the controller of Eqs. 10-11, the
transition counter of Eq. 5, the optimizer wrapper of Eq. 12 with its constructor, and
the hooks that log TR scheduling's quantities."""
from .controller import RunningTransitionRate, TALRController
from .counter import TransitionCounter
from .constructor import TRSOptimWrapperConstructor
from .optim_wrapper import AmpTRSOptimWrapper, TransitionRateSchedulingMixin, TRSOptimWrapper
from .param_groups import give_weights_own_groups
from .quant_weight_lr import FloatWeightLRConstructor, QuantWeightLRConstructor
from .replay import TALRRecorderHook, TALRReplayOptimWrapper, read_trajectory
from .settings import TRS_OPTIM_WRAPPER_SCHEMA, TRSettings
from .step_size_hook import EffectiveStepSizeHook
from .transition_rate_hook import TransitionRateHook

__all__ = ['RunningTransitionRate', 'TALRController', 'TransitionCounter',
           'TRSOptimWrapperConstructor', 'TRSOptimWrapper', 'AmpTRSOptimWrapper',
           'TransitionRateSchedulingMixin', 'give_weights_own_groups',
           'QuantWeightLRConstructor', 'FloatWeightLRConstructor', 'TRSettings',
           'TRS_OPTIM_WRAPPER_SCHEMA', 'EffectiveStepSizeHook', 'TransitionRateHook',
           'TALRRecorderHook', 'TALRReplayOptimWrapper', 'read_trajectory']
