"""env_cfg.retain_freed_memory (mmtrs/utils/allocator.py): glibc's trim and mmap
thresholds are fixed, so freed memory stays in the process.

Only what mallopt(3) specifies is checked, through glibc's own accounting (mallinfo2):
a request below M_MMAP_THRESHOLD comes from the heap, and free() gives the top of the
heap back only above M_TRIM_THRESHOLD. How many page faults that saves per training step
depends on the kernel and the machine; benchmarks/allocator.py measures it.
"""
import json
import os
import platform
import subprocess
import sys

import pytest
from mmengine.config import Config

from mmtrs.utils import allocator

from conftest import ROOT

BLOCK, N_BLOCKS = 16 * 2 ** 20, 5  # a step's bulk free in small: 5 x 16 MiB

# malloc N_BLOCKS blocks, free them all; glibc's accounting before, between and after:
# `arena` bytes of heap (sbrk), `hblkhd` bytes in mmapped chunks
PROBE = f"""
import ctypes, json, sys
if sys.argv[1] == 'retain':
    from mmtrs.utils.allocator import retain_freed_memory
    assert retain_freed_memory() is True
libc = ctypes.CDLL('libc.so.6')
FIELDS = ('arena', 'ordblks', 'smblks', 'hblks', 'hblkhd', 'usmblks', 'fsmblks',
          'uordblks', 'fordblks', 'keepcost')
if hasattr(libc, 'mallinfo2'):  # glibc >= 2.33
    info, word = libc.mallinfo2, ctypes.c_size_t
else:
    info, word = libc.mallinfo, ctypes.c_int
info.restype = type('Info', (ctypes.Structure,), dict(_fields_=[(f, word) for f in FIELDS]))
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]

def snapshot():
    i = info()
    return dict(arena=i.arena, hblkhd=i.hblkhd)

before = snapshot()
blocks = [libc.malloc({BLOCK}) for _ in range({N_BLOCKS})]
assert all(blocks)
held = snapshot()
for b in blocks:
    libc.free(b)
print(json.dumps(dict(before=before, held=held, freed=snapshot())))
"""


def _probe(mode):
    # a fresh interpreter, without the environment variables that set glibc's thresholds
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(('MALLOC_', 'GLIBC_TUNABLES'))}
    out = subprocess.run([sys.executable, '-c', PROBE, mode], cwd=ROOT, check=True,
                         capture_output=True, text=True, timeout=120, env=env).stdout
    return json.loads(out.strip().splitlines()[-1])


def _mapped(snapshot):
    return snapshot['arena'] + snapshot['hblkhd']


@pytest.mark.skipif(platform.libc_ver()[0] != 'glibc', reason='glibc malloc only')
def test_freed_blocks_stay_in_the_heap():
    total = BLOCK * N_BLOCKS
    # glibc's defaults: a 16 MiB block is above the initial 128 KiB mmap threshold, so it
    # gets an mmap of its own, unmapped by free(); had the dynamic threshold risen above
    # it, the 80 MiB freed at the top of the heap exceed the trim threshold (at most
    # 64 MiB) and are trimmed. Either way they leave the process.
    d = _probe('default')
    assert _mapped(d['held']) - _mapped(d['before']) >= total, d
    assert _mapped(d['held']) - _mapped(d['freed']) >= total - 2 ** 20, d
    # retained: below the 32 MiB mmap threshold, so from the heap (no mmapped chunk),
    # and below the trim threshold (2^31 - 1), so nothing is given back
    r = _probe('retain')
    assert r['held']['hblkhd'] == r['before']['hblkhd'], r
    assert _mapped(r['freed']) >= _mapped(r['held']), r


def test_env_cfg_value_is_checked_and_false_leaves_malloc_alone(monkeypatch):
    with pytest.raises(ValueError, match=r"env_cfg.retain_freed_memory='yes' is "
                                         r'invalid: expected True or False'):
        allocator.apply_env_cfg(Config(dict(env_cfg=dict(retain_freed_memory='yes'))))

    def refuse():
        raise AssertionError('mallopt called although the config switched it off')
    monkeypatch.setattr(allocator, 'retain_freed_memory', refuse)
    assert allocator.apply_env_cfg(Config(dict(env_cfg=dict(retain_freed_memory=False)))) \
        is False
    with pytest.raises(AssertionError, match='mallopt called'):  # default: on
        allocator.apply_env_cfg(Config(dict(env_cfg=dict(cudnn_benchmark=False))))
