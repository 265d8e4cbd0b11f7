"""Fail before a run starts on mistakes that would otherwise surface late or obscurely."""
import os.path as osp
import zipfile


class ConfigError(ValueError):
    """A config value that cannot work; the message names the key and the fix."""


def _dataset_files(key, ds):
    """Yield (config key, path, kind) of the files a dataset config needs."""
    if ds is None:
        return
    if ds.get('type') in ('ConcatDataset',):
        for i, sub in enumerate(ds.get('datasets', [])):
            yield from _dataset_files(f'{key}.datasets[{i}]', sub)
        return
    if 'dataset' in ds:  # wrappers such as RepeatDataset / ClassBalancedDataset
        yield from _dataset_files(f'{key}.dataset', ds['dataset'])
        return
    root = ds.get('data_root') or ''
    ann = ds.get('ann_file')
    if ann:
        yield f'{key}.ann_file', osp.join(root, ann), 'file'
    prefix = (ds.get('data_prefix') or {}).get('img')
    if prefix:
        yield f'{key}.data_prefix.img', osp.join(root, prefix), 'dir'


def check_config(cfg, training=True):
    """Check the files a run needs exist; raise ConfigError naming key and fix."""
    loaders = ['train_dataloader', 'val_dataloader'] if training else ['test_dataloader']
    for name in loaders:
        loader = cfg.get(name)
        if not loader:
            continue
        for key, path, kind in _dataset_files(f'{name}.dataset', loader.get('dataset')):
            exists = osp.isfile(path) if kind == 'file' else osp.isdir(path)
            if not exists and '://' not in path:
                hint = ''
                if 'synthetic_coco' in path:
                    hint = (' Generate the demo data with `python tools/make_synthetic_coco.py '
                            '--out data/synthetic_coco`.')
                elif 'coco' in path:
                    hint = (' Put MS COCO 2017 under data/coco/ (annotations/instances_'
                            'train2017.json, train2017/, val2017/) or symlink it there, or set '
                            f'{key.rsplit(".", 1)[0].rsplit(".data_prefix", 1)[0]}.data_root '
                            '(docs/coco_reproduction.md lists every key).')
                raise ConfigError(f'{key}: {kind} {path!r} does not exist.{hint} (Override '
                                  f'with --cfg-options {key}=...)')
    for key in ('val_evaluator', 'test_evaluator'):
        ev = cfg.get(key)
        if isinstance(ev, dict) and ev.get('ann_file') and key.startswith(
                'val' if training else 'test'):
            if not osp.isfile(ev['ann_file']) and '://' not in ev['ann_file']:
                raise ConfigError(f'{key}.ann_file: file {ev["ann_file"]!r} does not exist.')
    load_from = cfg.get('load_from')
    if load_from and '://' not in load_from:
        what = '--resume checkpoint' if cfg.get('resume') else 'load_from'
        if not osp.isfile(load_from):
            raise ConfigError(
                f'{what}: checkpoint file {load_from!r} does not exist. Quantized configs '
                'start from a trained FP checkpoint: train the FP config first (the demo '
                'does this), or set --cfg-options load_from=PATH.')
        if not zipfile.is_zipfile(load_from):
            # torch.save has written zip archives since torch 1.6; anything else here is
            # truncated, corrupt or not a checkpoint at all.
            raise ConfigError(
                f'{what}: {load_from!r} is not a readable PyTorch checkpoint (truncated or '
                'corrupt file?). Point load_from at an intact .pth file.')
