"""mmtrs: low-bit QAT with transition-rate scheduling for MMDetection 3.x.

Importing mmtrs registers everything it adds (QConv2d, QuantizedDetector,
TRSOptimWrapper, TRSOptimWrapperConstructor, TransitionRateHook) in the MMDetection /
MMEngine registries, so configs use `custom_imports=dict(imports=['mmtrs'])`.
"""
from .utils import register_checkpoint_loader

# MMEngine's local checkpoint loads get a weights-only allow-list scoped to each load;
# torch's process-wide allow-list is left untouched (mmtrs/utils/safe_load.py).
register_checkpoint_loader()

from . import engine, models, quant  # noqa: E402,F401  (registration side effects)

__version__ = '0.1.0'
