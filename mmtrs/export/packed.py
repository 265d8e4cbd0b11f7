"""The packed integer checkpoint: integer weight levels (two per byte for <= 4 bits),
scales and the other float tensors, plus a manifest.json, from which the fake-quant
model is rebuilt exactly.

File layout (`torch.save` of tensors and plain containers only, so it loads with
`torch.load(weights_only=True)`):

    {'format': 'mmtrs-packed-int', 'version': 1,
     'layers': {name: {'levels': uint8 (packed, <= 4 bits) or int8 tensor,
                       'shape': [...], 'w_bits': b, 'numel': n}},
     'tensors': {every other state-dict entry: BN/GN, biases, float layers,
                 quantizer scales and flags}}

Nibble packing: level l in [-8, 7] is stored as its 4-bit two's complement (l & 0xF),
element 2i in the low nibble and 2i+1 in the high nibble of byte i (ONNX's INT4 order).
Rebuild: the latent weight of a quantized layer is replaced by l * s_w / gamma_w, whose
levels under Eq. 13 are l again (|error| << 0.5 level), and everything else is loaded as
saved, so the rebuilt model's forward equals the original's bit for bit.
"""
import json
import os.path as osp

import torch

from .errors import ExportError
from .layers import collect_quant_layers

FORMAT = 'mmtrs-packed-int'
VERSION = 1


def pack_nibbles(levels):
    """int8 levels in [-8, 7] -> uint8 bytes, two per byte (low nibble first)."""
    flat = levels.flatten().to(torch.int16)
    if flat.numel() and (flat.min() < -8 or flat.max() > 7):
        raise ValueError('levels outside [-8, 7] do not fit 4 bits')
    if flat.numel() % 2:
        flat = torch.cat([flat, flat.new_zeros(1)])
    u = flat & 0xF
    return (u[0::2] | (u[1::2] << 4)).to(torch.uint8)


def unpack_nibbles(packed, numel):
    """Inverse of pack_nibbles: int8 tensor of `numel` levels."""
    p = packed.to(torch.int16)
    u = torch.stack([p & 0xF, p >> 4], dim=1).flatten()[:numel]
    return torch.where(u >= 8, u - 16, u).to(torch.int8)


def _weight_key(layer):
    return f'{layer.name}.weight'


def save_packed(model, path, manifest_path=None):
    """Write the packed checkpoint of a quantized model (scales loaded) and its
    manifest. Returns (path, manifest_path)."""
    layers = collect_quant_layers(model)
    sd = model.state_dict()
    packed_layers, manifest = {}, {}
    for layer in layers:
        levels = layer.weight_levels()
        bits = layer.wq.bits
        stored = pack_nibbles(levels) if bits <= 4 else levels.clone()
        packed_layers[layer.name] = dict(levels=stored, shape=list(levels.shape),
                                         w_bits=bits, numel=levels.numel())
        manifest[layer.name] = layer.manifest()
        manifest[layer.name]['packing'] = 'int4x2' if bits <= 4 else 'int8'
        sd.pop(_weight_key(layer))
    blob = dict(format=FORMAT, version=VERSION, layers=packed_layers,
                tensors={k: v.detach().clone() for k, v in sd.items()})
    torch.save(blob, path)
    manifest_path = manifest_path or osp.join(osp.dirname(path), 'manifest.json')
    with open(manifest_path, 'w') as f:
        json.dump(dict(format=FORMAT, version=VERSION, checkpoint=osp.basename(path),
                       note='levels: Eq. 13 integers; dequantized weight = level * '
                       'w_dq_scale (= s_w [* post_scale] / gamma_w); activation levels '
                       'x_d = clip(round(x / a_dq_scale), a_range), a_dq_scale = '
                       's_a / gamma_a (sign levels for a_binary)', layers=manifest),
                  f, indent=1)
    return path, manifest_path


def load_packed(path):
    """The packed checkpoint as saved (weights-only load). Raises ExportError on a file
    that is not one."""
    if not osp.isfile(path):
        raise ExportError(f'{path}: packed checkpoint does not exist.')
    try:
        blob = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as e:  # pickle/zip errors of every kind: one line naming the file
        raise ExportError(f'{path}: not a readable packed checkpoint '
                          f'({type(e).__name__}).') from None
    if not isinstance(blob, dict) or blob.get('format') != FORMAT:
        raise ExportError(f'{path}: not an mmtrs packed checkpoint (no format={FORMAT!r}).')
    return blob


def packed_levels(blob):
    """{layer: int8 levels tensor} of a loaded packed checkpoint."""
    out = {}
    for name, entry in blob['layers'].items():
        if entry['w_bits'] <= 4:
            lv = unpack_nibbles(entry['levels'], entry['numel'])
        else:
            lv = entry['levels'].flatten()
        out[name] = lv.reshape(entry['shape'])
    return out


@torch.no_grad()
def rebuild_from_packed(model, blob, source='the packed checkpoint'):
    """Load a packed checkpoint into `model` (built from the same config): the
    fake-quant model it was packed from, forward bit for bit. Returns the model."""
    sd = dict(blob['tensors'])
    levels = packed_levels(blob)
    for name, lv in levels.items():
        try:
            wq = model.get_submodule(name).weight_quantizer
        except AttributeError:
            raise ExportError(f'{source}: layer `{name}` is not a quantized layer of the '
                              'model built from the config.') from None
        scale = sd[f'{name}.weight_quantizer.scale'].float()
        sd[f'{name}.weight'] = lv.float() * scale / wq.qrange[2]
    own = model.state_dict()
    missing = sorted(set(own) - set(sd))
    unexpected = sorted(set(sd) - set(own))
    if missing or unexpected:
        key = (missing or unexpected)[0]
        raise ExportError(f'{source} does not match the config: '
                          f'{"missing" if missing else "unexpected"} key `{key}`.')
    model.load_state_dict(sd, strict=True)
    return model
