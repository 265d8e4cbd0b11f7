"""Keep freed CPU memory in the process between training steps (glibc malloc).

glibc returns the top of its heap to the OS whenever more than M_TRIM_THRESHOLD bytes
are free there, and serves blocks above M_MMAP_THRESHOLD with fresh mmaps. Both
thresholds adapt to the largest block freed so far, but a training step frees its
activations and gradients in bulk at the end of the backward pass, so the heap is
trimmed every step and the next step touches all those pages again: one minor page
fault (and a page zeroed by the kernel) per 4 KiB. A QAT step allocates more blocks of
activation size than an FP step (the quantized input of each layer, its gradient).
On CPU that costs a QAT step a few percent of an FP step (measured by
`benchmarks/allocator.py` and `benchmarks/step_cost.py --allocator`, docs/results.md).

Fixing the two thresholds (M_TRIM_THRESHOLD at its maximum, M_MMAP_THRESHOLD at glibc's
largest, 32 MiB) keeps that memory mapped: the peak memory is the same (it is reached
every step anyway), only the pages are no longer given back and faulted in again.
Blocks above 32 MiB (COCO-size activations) still get their own mmap; an allocator that
caches those too (jemalloc, tcmalloc, via LD_PRELOAD) goes further.

`env_cfg.retain_freed_memory` (default True) switches this on for tools/train.py and
tools/test.py; it is a no-op where the C library is not glibc.
"""
import ctypes
import platform

from mmengine.logging import print_log

from .config_schema import Bool, Schema

#: env_cfg keys of mmtrs (MMEngine ignores keys it does not know)
ENV_CFG_SCHEMA = Schema('env_cfg', dict(
    retain_freed_memory=Bool(doc='glibc malloc keeps freed memory between steps '
                                 '(default True; tools/train.py and tools/test.py)'),
))

# glibc's <malloc.h>
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
TRIM_THRESHOLD = 2 ** 31 - 1          # an int; in practice: never trim
MMAP_THRESHOLD = 32 * 1024 * 1024     # glibc's DEFAULT_MMAP_THRESHOLD_MAX on 64-bit


def retain_freed_memory():
    """Fix glibc's trim and mmap thresholds (see the module docstring). Returns True if
    both settings took effect, False where the C library is not glibc."""
    if platform.libc_ver()[0] != 'glibc':
        return False
    libc = ctypes.CDLL('libc.so.6')
    ok = libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1 and \
        libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
    if not ok:  # mallopt returns 1 on success; glibc refuses values out of its range
        raise RuntimeError('glibc mallopt refused the trim/mmap thresholds; set '
                           'env_cfg.retain_freed_memory=False to train without them')
    return True


def apply_env_cfg(cfg):
    """Apply `env_cfg.retain_freed_memory` of a config (default True; checked against
    its declaration, ENV_CFG_SCHEMA). Returns the value."""
    env = {'retain_freed_memory': True, **(cfg.get('env_cfg') or {})}
    ENV_CFG_SCHEMA.check(env, 'env_cfg')
    if env['retain_freed_memory'] and retain_freed_memory():
        print_log('glibc malloc keeps freed memory between steps '
                  '(env_cfg.retain_freed_memory=True)', logger='current')
    return env['retain_freed_memory']
