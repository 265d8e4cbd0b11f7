"""Let torch>=2.6 `weights_only` loading accept MMEngine checkpoints.

MMEngine 0.10.7 saves its MessageHub (HistoryBuffer objects, numpy arrays) inside
checkpoints and loads them with torch's default `weights_only=True`, which refuses
those classes. We allow-list exactly those classes instead of turning weights_only off:
a checkpoint from a stranger must never run code on load.
"""
import numpy as np
import torch


def allow_mmengine_checkpoint_globals():
    from mmengine.logging.history_buffer import HistoryBuffer
    allowed = [HistoryBuffer, np.ndarray, np.dtype]
    # numpy scalar/dtype classes that appear in pickled arrays and dtypes
    allowed += [type(np.dtype(t)) for t in (np.float64, np.float32, np.int64, np.int32,
                                            np.uint8, np.bool_)]
    allowed += [np.float64, np.float32, np.int64, np.int32]
    try:  # numpy >= 2
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct
    allowed.append(_reconstruct)
    torch.serialization.add_safe_globals(allowed)
