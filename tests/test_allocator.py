"""env_cfg.retain_freed_memory (mmtrs/utils/allocator.py): glibc keeps freed memory, so
the blocks of one step are not faulted in again in the next."""
import json
import platform
import subprocess
import sys

import pytest
from mmengine.config import Config

from mmtrs.utils import allocator
from mmtrs.utils.config_schema import ConfigSchemaError

from conftest import ROOT

# a step's pattern in small: five 16 MiB tensors written, then all freed at once; the
# minor page faults of each round
PROBE = """
import json, resource, sys, torch
if sys.argv[1] == 'retain':
    from mmtrs.utils.allocator import retain_freed_memory
    assert retain_freed_memory()
faults = []
for _ in range(4):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    blocks = [torch.ones(4 * 2 ** 20) for _ in range(5)]
    del blocks
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(json.dumps(faults))
"""


def _faults(mode):
    out = subprocess.run([sys.executable, '-c', PROBE, mode], cwd=ROOT, check=True,
                         capture_output=True, text=True, timeout=120).stdout
    return json.loads(out.strip().splitlines()[-1])


@pytest.mark.skipif(platform.libc_ver()[0] != 'glibc', reason='glibc malloc only')
def test_retained_memory_is_not_faulted_in_again():
    default, retain = _faults('default'), _faults('retain')
    # the first round maps fresh pages either way (80 MiB: ~20k 4 KiB pages)
    assert default[0] > 10000 and retain[0] > 10000
    # afterwards glibc trims the heap and faults the pages in again (here for 3 rounds
    # until its thresholds have adapted); with the thresholds fixed it mostly does not
    assert sum(default[1:]) > 20000, default
    assert sum(retain[1:]) < 0.25 * sum(default[1:]), (default, retain)


def test_env_cfg_value_is_checked_and_false_leaves_malloc_alone(monkeypatch):
    with pytest.raises(ConfigSchemaError, match=r"env_cfg.retain_freed_memory='yes' is "
                                                r'invalid: expected True or False'):
        allocator.apply_env_cfg(Config(dict(env_cfg=dict(retain_freed_memory='yes'))))

    def refuse():
        raise AssertionError('mallopt called although the config switched it off')
    monkeypatch.setattr(allocator, 'retain_freed_memory', refuse)
    assert allocator.apply_env_cfg(Config(dict(env_cfg=dict(retain_freed_memory=False)))) \
        is False
    with pytest.raises(AssertionError, match='mallopt called'):  # default: on
        allocator.apply_env_cfg(Config(dict(env_cfg=dict(cudnn_benchmark=False))))
