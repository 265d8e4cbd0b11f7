"""Build a detector from a config and load a QAT checkpoint into it, refusing (with one
line naming the file and key) FP checkpoints, checkpoints of another model, and
quantizers that were never initialised."""
import os.path as osp
import zipfile

from .errors import ExportError


def build_detector(cfg):
    """The model of an MMEngine Config (cfg.model), in eval mode, on CPU."""
    import mmtrs  # noqa: F401  (registers QConv2d, QuantizedDetector, ...)
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    register_all_modules()
    model = MODELS.build(cfg.model)
    return model.eval()


def read_state_dict(path):
    """The state dict of an MMEngine checkpoint (or of a bare state dict), read with
    MMEngine's CheckpointLoader, i.e. torch's weights-only loader."""
    if not osp.isfile(path):
        raise ExportError(f'{path}: checkpoint file does not exist.')
    if not zipfile.is_zipfile(path):
        raise ExportError(f'{path}: not a readable PyTorch checkpoint (truncated or '
                          'corrupt file?).')
    from mmengine.runner.checkpoint import CheckpointLoader
    ckpt = CheckpointLoader.load_checkpoint(path, map_location='cpu')
    sd = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(sd, dict):
        raise ExportError(f'{path}: holds no state dict (expected an MMEngine checkpoint '
                          "with a 'state_dict' entry).")
    return {k[len('module.'):] if k.startswith('module.') else k: v for k, v in sd.items()}


def _first(keys, more_word='more'):
    keys = sorted(keys)
    extra = f' (and {len(keys) - 1} {more_word})' if len(keys) > 1 else ''
    return f'`{keys[0]}`{extra}'


def load_qat_checkpoint(model, ckpt_path, config_path='the config'):
    """Load `ckpt_path` into `model` (strict), after checking that it is a QAT
    checkpoint of this very model. Returns the model."""
    sd = read_state_dict(ckpt_path)
    own = model.state_dict()
    quant_keys = [k for k in own if k.endswith('_quantizer.scale')]
    if not quant_keys:
        raise ExportError(f'{config_path} builds no quantized layer: export needs a '
                          "quantized config (model.type='QuantizedDetector').")
    if not any(k.endswith('_quantizer.scale') for k in sd):
        raise ExportError(
            f'{ckpt_path}: no quantizer scale in it (no `*_quantizer.scale` key, e.g. '
            f'`{quant_keys[0]}`): this is an FP checkpoint. Export the checkpoint of a QAT '
            'run (tools/train.py with a quantized config).')
    missing = [k for k in own if k not in sd]
    if missing:
        raise ExportError(f'{ckpt_path} does not match {config_path}: missing key '
                          f'{_first(missing)}.')
    unexpected = [k for k in sd if k not in own]
    if unexpected:
        raise ExportError(f'{ckpt_path} does not match {config_path}: unexpected key '
                          f'{_first(unexpected)}.')
    shapes = [k for k in own if tuple(sd[k].shape) != tuple(own[k].shape)]
    if shapes:
        k = sorted(shapes)[0]
        more = f' (and {len(shapes) - 1} more)' if len(shapes) > 1 else ''
        raise ExportError(f'{ckpt_path} does not match {config_path}: `{k}` has shape '
                          f'{tuple(sd[k].shape)} in the checkpoint, {tuple(own[k].shape)} '
                          f'in the model{more}.')
    not_init = [k for k in own if k.endswith('_quantizer.initialized') and int(sd[k]) == 0]
    if not_init:
        raise ExportError(f'{ckpt_path}: quantizer never initialised: {_first(not_init)} '
                          'is 0. Export a checkpoint written after at least one QAT '
                          'training step.')
    model.load_state_dict(sd, strict=True)
    return model
