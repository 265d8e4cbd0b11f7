"""Weights-only loading of MMEngine checkpoints, with an allow-list scoped to each load.

MMEngine 0.10.7 saves its MessageHub (HistoryBuffer objects holding numpy arrays) in
every checkpoint and loads with torch's default `weights_only=True`, which refuses
those globals. We never turn weights_only off (a checkpoint from a stranger must not
run code on load), and we never widen torch's process-wide allow-list either: that
would weaken every other `torch.load(weights_only=True)` in the user's program.

Instead, `register_checkpoint_loader()` (called by `import mmtrs`) replaces MMEngine's
local-file loader through its own extension point, `CheckpointLoader.register_scheme`.
Only inside that loader, for the duration of one `torch.load`, are these allowed:

* HistoryBuffer, numpy's ndarray/dtype reconstruction and `_codecs.encode`: the globals
  real MMEngine checkpoints contain (found by listing the GLOBAL opcodes of ours);
* `builtins.getattr` in a restricted form only. HistoryBuffer pickles its statistics
  methods as `getattr(HistoryBuffer, 'mean')`; the pickle's getattr is mapped to
  `_history_buffer_getattr`, which returns exactly those methods and refuses anything
  else. The real getattr would let a pickle walk from any allowed object to any other
  (`getattr(getattr, '__self__')` is the builtins module, hence `exec`).

After the load, every HistoryBuffer in the checkpoint must hold only its data
attributes, and HistoryBuffer's class-level statistics registry (which its
`__setstate__` updates) must be unchanged; otherwise the registry is restored and the
load refused. So a pickle cannot plant a callable that MMEngine later calls while
logging.
"""
import _codecs
import contextlib
import os.path as osp
import pickle

import numpy as np
import torch


class CheckpointLoadError(RuntimeError):
    """A checkpoint file that cannot be loaded; the message is one line naming it."""


# What HistoryBuffer pickles by name: the statistics methods MMEngine registers itself.
_DEFAULT_STATISTICS = ('min', 'max', 'current', 'mean')
# The instance attributes a HistoryBuffer has after HistoryBuffer.__setstate__.
_HISTORY_BUFFER_ATTRS = {'max_length', '_log_history', '_count_history'}


def _history_buffer():
    from mmengine.logging.history_buffer import HistoryBuffer
    return HistoryBuffer


def _history_buffer_getattr(obj, name):
    """Stands in for `builtins.getattr` during our loads: only
    `getattr(HistoryBuffer, <registered statistics method>)` is answered."""
    HistoryBuffer = _history_buffer()
    allowed = set(_DEFAULT_STATISTICS) | set(HistoryBuffer._statistics_methods)
    if obj is HistoryBuffer and isinstance(name, str) and name in allowed:
        method = getattr(HistoryBuffer, name, None)
        if callable(method):
            return method
    raise pickle.UnpicklingError(
        f'getattr({getattr(obj, "__qualname__", type(obj).__name__)}, {name!r}) is not '
        'allowed: only HistoryBuffer statistics methods may be looked up')


def _numpy_multiarray():
    try:  # numpy >= 2
        from numpy._core import multiarray
    except ImportError:  # numpy < 2
        from numpy.core import multiarray
    return multiarray


def mmengine_checkpoint_globals():
    """The allow-list for one MMEngine checkpoint load (see the module docstring)."""
    multiarray = _numpy_multiarray()
    allowed = [_history_buffer(), np.ndarray, np.dtype, multiarray._reconstruct,
               multiarray.scalar, _codecs.encode,
               (_history_buffer_getattr, 'builtins.getattr')]
    # dtype classes (numpy >= 1.25 pickles dtypes by their class, e.g. Float64DType)
    allowed += sorted({type(np.dtype(t)) for t in (np.float64, np.float32, np.float16,
                                                   np.int64, np.int32, np.int16, np.int8,
                                                   np.uint8, np.bool_)}, key=str)
    return allowed


@contextlib.contextmanager
def mmengine_safe_globals():
    """Allow the MMEngine checkpoint globals for the duration of the block only.

    Globals the user had already allowed stay allowed afterwards (torch's own
    `safe_globals` would remove them on exit)."""
    present = set(map(repr, torch.serialization.get_safe_globals()))
    extra = [g for g in mmengine_checkpoint_globals() if repr(g) not in present]
    with torch.serialization.safe_globals(extra):
        yield


def _iter_history_buffers(obj, depth=0):
    HistoryBuffer = _history_buffer()
    if isinstance(obj, HistoryBuffer):
        yield obj
    elif depth < 8 and isinstance(obj, dict):
        for v in obj.values():
            yield from _iter_history_buffers(v, depth + 1)
    elif depth < 8 and isinstance(obj, (list, tuple)):
        for v in obj:
            yield from _iter_history_buffers(v, depth + 1)


def _check_history_buffers(checkpoint):
    for buf in _iter_history_buffers(checkpoint):
        attrs = set(vars(buf))
        if attrs - _HISTORY_BUFFER_ATTRS:
            raise pickle.UnpicklingError(
                f'a HistoryBuffer carries unexpected attributes {sorted(attrs - _HISTORY_BUFFER_ATTRS)}')
        for key in ('_log_history', '_count_history'):
            arr = vars(buf).get(key)
            if arr is not None and not (isinstance(arr, np.ndarray) and arr.dtype.kind in 'biuf'):
                raise pickle.UnpicklingError(f'a HistoryBuffer.{key} is not a numeric array')


@contextlib.contextmanager
def _statistics_registry_guard():
    """Refuse (and undo) any change a pickle makes to HistoryBuffer's class-level
    statistics registry, which HistoryBuffer.__setstate__ updates from the file."""
    HistoryBuffer = _history_buffer()
    registry = HistoryBuffer._statistics_methods
    before = dict(registry)
    genuine = {n: getattr(HistoryBuffer, n) for n in _DEFAULT_STATISTICS}
    try:
        yield
    finally:
        changed = [n for n, f in registry.items()
                   if f is not before.get(n, genuine.get(n))]
        if changed:
            registry.clear()
            registry.update(before)
    if changed:
        raise pickle.UnpicklingError(
            f'the file replaces HistoryBuffer statistics methods {sorted(changed)}')


def _one_line(exc):
    text = str(exc)
    # torch's refusal starts with generic advice; its reason follows this marker
    if 'WeightsUnpickler error:' in text:
        text = text.split('WeightsUnpickler error:', 1)[1].split('Check the documentation')[0]
    text = ' '.join(text.split())
    return (text or type(exc).__name__)[:300]


def load_checkpoint_file(filename, map_location='cpu'):
    """`torch.load(filename, weights_only=True)` of an MMEngine checkpoint (or any
    tensor file), with the scoped allow-list, the post-load checks, and one-line errors
    naming the file."""
    filename = osp.expanduser(str(filename))
    if not osp.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.')
    if osp.getsize(filename) == 0:
        raise CheckpointLoadError(f'{filename}: empty file, not a PyTorch checkpoint.')
    try:
        with mmengine_safe_globals(), _statistics_registry_guard():
            checkpoint = torch.load(filename, map_location=map_location, weights_only=True)
            _check_history_buffers(checkpoint)
    except pickle.UnpicklingError as e:
        raise CheckpointLoadError(
            f'{filename}: refused by the weights-only loader ({_one_line(e)}): the file '
            'is corrupt, or holds objects other than tensors, numbers and MMEngine log '
            'buffers. mmtrs never loads with weights_only=False.') from None
    except Exception as e:  # noqa: BLE001  (torch's parsers fail in many ways on garbage)
        raise CheckpointLoadError(
            f'{filename}: not a readable PyTorch checkpoint, truncated or corrupt? '
            f'({type(e).__name__}: {_one_line(e)})') from None
    return checkpoint


def load_from_local(filename, map_location):
    # (MMEngine logs "Loads checkpoint by <name[10:]> backend": the name reads "local")
    return load_checkpoint_file(filename, map_location)


def register_checkpoint_loader():
    """Make MMEngine's local-file checkpoint loads (runner resume, `load_from`,
    `load_checkpoint`, tools/test.py) go through `load_checkpoint_file`."""
    from mmengine.runner.checkpoint import CheckpointLoader
    CheckpointLoader.register_scheme(prefixes='', loader=load_from_local, force=True)
