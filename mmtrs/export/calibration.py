"""Preprocessed input batches from a config's data set: the calibration images of the
int8 graph's 8-bit re-quantizations and the test images of tools/verify_export.py."""
from .errors import ExportError

SPLITS = ('val', 'test', 'train')


def dataset_batches(cfg, model, num_images, split='val'):
    """The first `num_images` images of `cfg.<split>_dataloader`, through the model's
    data preprocessor (normalization, padding), as a list of (N, 3, H, W) tensors.
    Raises ExportError (one line) if the data set cannot be read."""
    from mmengine.runner import Runner
    if split not in SPLITS:
        raise ExportError(f'split {split!r}: use one of {SPLITS}.')
    key = f'{split}_dataloader'
    if key not in cfg:
        raise ExportError(f'the config has no `{key}` to take images from.')
    loader_cfg = cfg[key].copy() if hasattr(cfg[key], 'copy') else dict(cfg[key])
    loader_cfg['num_workers'] = 0
    loader_cfg['persistent_workers'] = False
    if split == 'train':  # the test pipeline's view of the training images
        loader_cfg['dataset'] = dict(cfg.test_dataloader.dataset,
                                     ann_file=cfg[key].dataset.ann_file,
                                     data_prefix=cfg[key].dataset.data_prefix)
        loader_cfg['sampler'] = dict(type='DefaultSampler', shuffle=False)
        loader_cfg.pop('batch_sampler', None)
    try:
        loader = Runner.build_dataloader(loader_cfg)
        batches, n = [], 0
        for data in loader:
            x = model.data_preprocessor(data, False)['inputs'][:num_images - n]
            batches.append(x)
            n += x.shape[0]
            if n >= num_images:
                break
    except (FileNotFoundError, OSError) as e:
        root = cfg[key].dataset.get('data_root', '')
        raise ExportError(f'cannot read images of `{key}` (data_root {root!r}): '
                          f'{type(e).__name__}: {e}. Point it at the data with '
                          f'--cfg-options {key}.dataset.data_root=...') from None
    if not batches:
        raise ExportError(f'`{key}` yielded no images.')
    return batches
