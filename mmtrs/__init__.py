"""mmtrs: low-bit QAT with transition-rate scheduling for MMDetection 3.x.

Importing mmtrs registers everything it adds (QConv2d, QuantizedDetector,
TRSOptimWrapper, TRSOptimWrapperConstructor, TransitionRateHook) in the MMDetection /
MMEngine registries, so configs use `custom_imports=dict(imports=['mmtrs'])`.
"""
from .utils import allow_mmengine_checkpoint_globals

allow_mmengine_checkpoint_globals()

from . import engine, models, quant  # noqa: E402,F401  (registration side effects)

__version__ = '0.1.0'
