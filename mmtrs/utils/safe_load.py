"""Let torch>=2.6 `weights_only` loading accept MMEngine checkpoints.

MMEngine 0.10.7 saves its MessageHub (HistoryBuffer objects holding numpy arrays and
scalars) inside every checkpoint, and loads checkpoints with torch's default
`weights_only=True`, which refuses those globals. We allow-list exactly the globals such
checkpoints contain (found by listing the GLOBAL opcodes of real ones) instead of turning
weights_only off: a checkpoint from a stranger must never run code on load.

`getattr` is among them because HistoryBuffer pickles its statistics methods as
`getattr(HistoryBuffer, 'min')`. In torch's weights-only unpickler REDUCE may only call
allow-listed callables, so getattr can fetch an attribute of an allow-listed object as
data, but what it returns can never be called.
"""
import _codecs
import builtins

import numpy as np
import torch


def _numpy_multiarray():
    try:  # numpy >= 2
        from numpy._core import multiarray
    except ImportError:  # numpy < 2
        from numpy.core import multiarray
    return multiarray


def allow_mmengine_checkpoint_globals():
    from mmengine.logging.history_buffer import HistoryBuffer
    multiarray = _numpy_multiarray()
    allowed = [HistoryBuffer, np.ndarray, np.dtype, multiarray._reconstruct,
               multiarray.scalar, _codecs.encode, builtins.getattr]
    # dtype classes (numpy >= 1.25 pickles dtypes by their class, e.g. Float64DType)
    allowed += sorted({type(np.dtype(t)) for t in (np.float64, np.float32, np.float16,
                                                   np.int64, np.int32, np.int16, np.int8,
                                                   np.uint8, np.bool_)}, key=str)
    torch.serialization.add_safe_globals(allowed)
