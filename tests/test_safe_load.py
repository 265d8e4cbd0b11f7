"""Checkpoint loading keeps torch's weights-only guarantee (docs/errors.md, Security).

Each crafted file below is first shown to be a working exploit under the allow-list
mmtrs used to register process-wide (builtins.getattr as such), so a pass here means
the file is refused, not that it was harmless to begin with."""
import _codecs
import builtins
import os.path as osp
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch
from mmengine.logging.history_buffer import HistoryBuffer

import mmtrs  # noqa: F401  (registers mmtrs' checkpoint loader, as a user's program does)
from mmtrs.utils import CheckpointLoadError, load_checkpoint_file
from mmtrs.utils.safe_load import mmengine_checkpoint_globals

from conftest import ROOT, TRS_CFG, data_options, run_tool


# ---- crafted pickles: each object pickles as getattr(...) calls -----------------------
class _BuiltinsModule:
    """Pickles as getattr(getattr, '__self__'): the builtins module."""

    def __reduce__(self):
        return getattr, (getattr, '__self__')


class _BuiltinRef:
    """Pickles as getattr(getattr(getattr, '__self__'), name), e.g. builtins.exec."""

    def __init__(self, name):
        self.name = name

    def __reduce__(self):
        return getattr, (_BuiltinsModule(), self.name)


class _InitGlobals:
    """Pickles as getattr(getattr(HistoryBuffer, '__init__'), '__globals__')."""

    class _Init:
        def __reduce__(self):
            return getattr, (HistoryBuffer, '__init__')

    def __reduce__(self):
        return getattr, (self._Init(), '__globals__')


def _old_allow_list():
    """The process-wide allow-list mmtrs registered before this fix: real getattr."""
    return [g for g in mmengine_checkpoint_globals() if not isinstance(g, tuple)] + [getattr]


def _buffer_with_methods(methods):
    buf = HistoryBuffer([1.0, 2.0], [1, 1])
    # an instance-level registry, written into the pickle by HistoryBuffer.__getstate__
    buf._statistics_methods = methods
    return buf


@pytest.fixture
def registry_restored():
    saved = dict(HistoryBuffer._statistics_methods)
    yield
    HistoryBuffer._statistics_methods.clear()
    HistoryBuffer._statistics_methods.update(saved)


def _save(tmp_path, name, obj):
    path = tmp_path / name
    torch.save({'state_dict': {'w': torch.ones(2)}, 'message_hub': obj}, path)
    return str(path)


def test_exec_via_getattr_chain_is_refused(tmp_path):
    path = _save(tmp_path, 'exec.pth', _BuiltinRef('exec'))
    with torch.serialization.safe_globals(_old_allow_list()):   # the exploit works there
        assert torch.load(path, weights_only=True)['message_hub'] is builtins.exec
    with pytest.raises(pickle.UnpicklingError):                  # plain torch, mmtrs imported
        torch.load(path, weights_only=True)
    with pytest.raises(CheckpointLoadError, match=r'exec\.pth: refused by the weights-only'):
        load_checkpoint_file(path)                               # MMEngine's loads, via mmtrs


def test_function_globals_via_history_buffer_init_are_refused(tmp_path):
    path = _save(tmp_path, 'globals.pth', _InitGlobals())
    with torch.serialization.safe_globals(_old_allow_list()):
        assert isinstance(torch.load(path, weights_only=True)['message_hub'], dict)
    with pytest.raises(CheckpointLoadError, match=r"getattr\(HistoryBuffer, '__init__'\)"):
        load_checkpoint_file(path)


def test_planted_statistics_method_is_refused(tmp_path, registry_restored, capsys):
    path = _save(tmp_path, 'print.pth', {'log_scalars': {
        'train/loss': _buffer_with_methods({'mean': _BuiltinRef('print')})}})
    with torch.serialization.safe_globals(_old_allow_list()):
        buf = torch.load(path, weights_only=True)['message_hub']['log_scalars']['train/loss']
    buf.statistics('mean')          # what MMEngine's LogProcessor does while logging
    assert '<mmengine.logging.history_buffer.HistoryBuffer' in capsys.readouterr().out
    HistoryBuffer._statistics_methods['mean'] = HistoryBuffer.mean  # undo the pollution
    with pytest.raises(CheckpointLoadError, match='print.pth'):
        load_checkpoint_file(path)
    assert HistoryBuffer._statistics_methods['mean'] is HistoryBuffer.mean


def test_planted_allowed_callable_is_refused_and_registry_restored(tmp_path,
                                                                    registry_restored):
    """A callable that is itself on the allow-list (_codecs.encode) needs no getattr;
    the registry guard and the attribute check still refuse it."""
    path = _save(tmp_path, 'encode.pth', {'log_scalars': {
        'loss': _buffer_with_methods({'mean': _codecs.encode})}})
    with pytest.raises(CheckpointLoadError, match='encode.pth: refused'):
        load_checkpoint_file(path)
    assert HistoryBuffer._statistics_methods['mean'] is HistoryBuffer.mean


def test_genuine_history_buffers_load(tmp_path):
    buf = HistoryBuffer([1.0, 3.0], [1, 1])
    path = _save(tmp_path, 'good.pth', {'log_scalars': {'loss': buf}})
    loaded = load_checkpoint_file(path)['message_hub']['log_scalars']['loss']
    assert loaded.statistics('mean') == 2.0
    np.testing.assert_array_equal(loaded._log_history, [1.0, 3.0])


def test_import_mmtrs_leaves_torch_allow_list_unchanged(tmp_path):
    path = _save(tmp_path, 'exec.pth', _BuiltinRef('exec'))
    # torch registers its own DTensor globals when torch.distributed is imported (by
    # mmengine): anything else added, or any tuple (substitute) entry, is ours
    code = ('import torch; before = list(torch.serialization.get_safe_globals()); '
            'import mmtrs; from mmtrs.utils import load_checkpoint_file as f; '
            f'f({path!r}.replace("exec.pth", "ok.pth")); '
            'after = torch.serialization.get_safe_globals(); '
            'added = [g for g in after if g not in before]; '
            'bad = [g for g in added if isinstance(g, tuple) or '
            'not getattr(g, "__module__", "").startswith("torch.")]; '
            'assert not bad and getattr not in after, bad; print("unchanged")')
    torch.save({'state_dict': {'w': torch.ones(1)}}, tmp_path / 'ok.pth')
    proc = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                          cwd=ROOT, timeout=300)
    assert proc.returncode == 0 and 'unchanged' in proc.stdout, proc.stderr[-2000:]


def _broken_files(tmp_path):
    good = tmp_path / 'good.pth'
    torch.save({'state_dict': {'w': torch.arange(4000.0)}}, good)
    data = good.read_bytes()
    files = {'empty.pth': b'', 'truncated.pth': data[:len(data) // 2],
             'notzip.pth': b'this is not a checkpoint\n' * 40,
             'random.pth': np.random.default_rng(0).bytes(4096)}
    # a zip whose central directory is intact but whose pickle is garbage
    start = data.index(b'\x80\x02', data.index(b'data.pkl'))  # the pickle's PROTO opcode
    files['corrupt_pickle.pth'] = data[:start] + b'\x00' * 16 + data[start + 16:]
    paths = {}
    for name, content in files.items():
        (tmp_path / name).write_bytes(content)
        paths[name] = str(tmp_path / name)
    return paths


def test_broken_files_give_one_line_errors_naming_the_file(tmp_path):
    for name, path in _broken_files(tmp_path).items():
        with pytest.raises(CheckpointLoadError) as info:
            load_checkpoint_file(path)
        msg = str(info.value)
        assert msg.startswith(path) and '\n' not in msg, msg


def _tool_error(proc, fragment):
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert 'Traceback' not in proc.stderr, proc.stderr[-3000:]
    assert fragment in lines[-1], lines[-1]
    return lines[-1]


def test_tools_refuse_crafted_and_broken_checkpoints(tiny_coco, tmp_path):
    """tools/test.py, load_from and --resume: the crafted file is refused, a corrupt
    one named, each in one line and before any weight is used."""
    evil = _save(tmp_path, 'evil.pth', _BuiltinRef('exec'))
    corrupt = _broken_files(tmp_path)['corrupt_pickle.pth']
    opts = [*data_options(tiny_coco), 'train_cfg.max_iters=2']
    for args, path, fragment in [
            (['tools/test.py', TRS_CFG, evil], evil, 'refused by the weights-only loader'),
            (['tools/test.py', TRS_CFG, corrupt], corrupt, 'the file is corrupt'),
            (['tools/train.py', TRS_CFG, '--work-dir', str(tmp_path / 'wd')], evil,
             'refused by the weights-only loader'),
            (['tools/train.py', TRS_CFG, '--work-dir', str(tmp_path / 'wd'), '--resume',
              evil], evil, 'refused by the weights-only loader')]:
        extra = [f'load_from={path}'] if '--resume' not in args and 'train.py' in args[0] \
            else []
        proc = run_tool(args + ['--cfg-options', *opts, *extra], check=False)
        line = _tool_error(proc, fragment)
        assert osp.basename(path) in line
