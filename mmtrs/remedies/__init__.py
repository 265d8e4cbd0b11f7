"""Oscillation remedies from the QAT literature, as comparison methods that run under
any optimizer wrapper (plain SGD/Adam or TR scheduling): oscillation tracking, iterative
freezing and dampening (Nagel et al., ICML 2022), LTS freezing (SpQAT) and oscillation-
aware bin regularisation (OBR, Quantization Variation). docs/methods.md describes each.

Per-weight state (`state.py`), schedules (`schedules.py`), weight freezing
(`freezing.py`) and loss terms (`losses.py`) are plain functions and classes; the hooks
(`per_weight_hooks.py`, `regularizer_hooks.py`) bind them to a Runner.
"""
from .freezing import FrozenWeights, attach_freezer, detach_freezer
from .losses import bin_regularization_loss, dampening_loss
from .per_weight_hooks import LTSFreezingHook, OscillationFreezingHook, OscillationTrackingHook
from .regularizer_hooks import (BinRegularizationHook, OscillationDampeningHook,
                                QuantRegularizerHook)
from .schedules import cosine_anneal, lts_tau
from .state import LTSState, OscillationState

__all__ = ['FrozenWeights', 'attach_freezer', 'detach_freezer', 'bin_regularization_loss',
           'dampening_loss', 'LTSFreezingHook', 'OscillationFreezingHook',
           'OscillationTrackingHook', 'BinRegularizationHook', 'OscillationDampeningHook',
           'QuantRegularizerHook', 'cosine_anneal', 'lts_tau', 'LTSState',
           'OscillationState']
