"""mmtrs: low-bit QAT with transition-rate scheduling for MMDetection 3.x.

Importing mmtrs registers everything it adds (QConv2d, QLinear, QuantizedDetector,
TRSOptimWrapper, TRSOptimWrapperConstructor, TransitionRateHook, the remedies' hooks)
in the MMDetection / MMEngine registries, so configs use
`custom_imports=dict(imports=['mmtrs'])`.

Packages, each importing only those below it:

    apis, export, models        the tools' glue, deployment, detector pieces
    trs, remedies, engine       TR scheduling (Eqs. 5, 10-12); comparison methods; hooks
    quant                       the quantizer (Eq. 13), quantized layers, the policy
    utils                       config schemas, safe checkpoint loading, scalars
"""
from .utils import register_checkpoint_loader

# MMEngine's local checkpoint loads get a weights-only allow-list scoped to each load;
# torch's process-wide allow-list is left untouched (mmtrs/utils/safe_load.py).
register_checkpoint_loader()

from . import engine, models, quant, remedies, trs  # noqa: E402,F401  (registration)

__version__ = '0.1.0'
