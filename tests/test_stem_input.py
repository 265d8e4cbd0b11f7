"""The first layer's input quantizer: a scale fixed from the data preprocessor's mean/std
(no gradient w.r.t. the image), the learned scale behind `input_scale='learned'`, and
float input behind `a_bits=None`."""
import copy
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from torch import nn

import mmtrs  # noqa: F401
from mmtrs.quant import build_quant_cfg, quantize_model
from mmtrs.quant.input_scale import covering_scale

from conftest import ROOT

DEMO_FP = osp.join(ROOT, 'configs/demo/retinanet_r18_fp_demo.py')
# the demo's data preprocessor (mmdet's RetinaNet base): ImageNet mean/std in 0..255
MEAN = (123.675, 116.28, 103.53)
STD = (58.395, 57.12, 57.375)


def build_demo(first_layer):
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    register_all_modules()
    m = copy.deepcopy(Config.fromfile(DEMO_FP).model)
    m.update(type='QuantizedDetector', detector_type='RetinaNet',
             quant_cfg=dict(w_bits=4, a_bits=4, first_layer=first_layer))
    assert tuple(m.data_preprocessor.mean) == MEAN and tuple(m.data_preprocessor.std) == STD
    return MODELS.build(m)


def stem_output_after_backward(model, size=32):
    """Train-mode forward of the backbone on a normalized image batch, the stem conv's
    output captured, and a backward pass."""
    torch.manual_seed(0)
    pixels = torch.randint(0, 256, (2, 3, size, size)).float()
    x = (pixels - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
    seen = {}
    handle = model.backbone.conv1.register_forward_hook(
        lambda mod, inp, out: seen.setdefault('out', out))
    model.train()
    feats = model.backbone(x)
    handle.remove()
    sum(f.sum() for f in feats).backward()
    return seen['out'], x


def test_fixed_scale_covers_the_normalized_pixel_range_by_hand():
    model = build_demo(dict(w_bits=8, a_bits=8, init_mult=12.0))  # no key: 'fixed'
    q = model.backbone.conv1.act_quantizer
    # highest value: channel 3, (255 - 103.53) / 57.375 = 2.64; lowest: channel 1,
    # -123.675 / 58.395 = -2.117904. Signed 8 bit: beta / gamma * s >= 2.64 needs
    # s = 2.64 * 128 / 127 = 2.6607874; alpha / gamma * s = -s <= -2.1179 holds.
    assert q.signed and q.is_initialized and not q.scale.requires_grad
    assert float(q.scale) == pytest.approx(2.64 * 128 / 127, rel=1e-6)
    # pixel 255 of channel 3 -> level 127 (top of the grid); pixel 0 of channel 1 ->
    # round(-2.117904 * 128 / 2.6607874) = round(-101.885) = -102
    levels = q.discretize(torch.tensor([2.64, -123.675 / 58.395, 0.0]))
    assert levels.tolist() == [127.0, -102.0, 0.0]


def test_covering_scale_unsigned_and_signed_by_hand():
    assert covering_scale(0.0, 255.0, (0, 255, 256)) == pytest.approx(256.0)   # [0, 255]
    assert covering_scale(-3.0, 1.0, (-128, 127, 128)) == pytest.approx(3.0)
    assert covering_scale(-1.0, 2.54, (-8, 7, 8)) == pytest.approx(2.54 * 8 / 7)
    with pytest.raises(ValueError, match='unsigned'):
        covering_scale(-1.0, 1.0, (0, 255, 256))


def test_stem_conv_requests_no_input_gradient_by_default():
    """ConvolutionBackward's first next_function is the image side: None means the
    backward pass does not compute d loss / d input (output_mask[0] is False)."""
    model = build_demo(dict(w_bits=8, a_bits=8, init_mult=12.0))
    out, x = stem_output_after_backward(model)
    assert out.grad_fn.next_functions[0][0] is None
    conv = model.backbone.conv1
    assert conv.weight.grad is not None and conv.weight.grad.abs().sum() > 0
    assert conv.weight_quantizer.scale.grad is not None          # weight scale learns
    assert conv.act_quantizer.scale.grad is None                 # input scale fixed


def test_learned_input_scale_stays_reachable_and_needs_the_input_gradient():
    model = build_demo(dict(w_bits=8, a_bits=8, init_mult=12.0, input_scale='learned'))
    q = model.backbone.conv1.act_quantizer
    assert not q.is_initialized and q.scale.requires_grad
    out, x = stem_output_after_backward(model)
    # the input quantizer's node (the C++ node on CPU float32, _QuantizeFn elsewhere)
    assert 'Quantize' in out.grad_fn.next_functions[0][0].name()
    assert q.scale.grad is not None and q.is_initialized
    # today's rule, from the first batch: signed (negative input), s = init_mult * std(x)
    assert q.signed
    assert float(q.scale.detach()) == pytest.approx(12.0 * float(x.double().std()),
                                                    rel=1e-5)


def test_float_stem_input_requests_no_input_gradient():
    model = build_demo(dict(w_bits=8, a_bits=None))
    assert model.backbone.conv1.act_quantizer is None
    out, x = stem_output_after_backward(model)
    assert out.grad_fn.next_functions[0][0] is None


def test_fixed_scale_survives_fp_checkpoint_loading(tmp_path):
    fp = build_demo(None)
    q = build_demo(dict(w_bits=8, a_bits=8))
    q.load_state_dict(fp.state_dict(), strict=False)
    assert float(q.backbone.conv1.act_quantizer.scale) == pytest.approx(2.64 * 128 / 127,
                                                                        rel=1e-6)


def test_fixed_scale_needs_a_data_preprocessor():
    class Bare(nn.Module):
        def __init__(self):
            super().__init__()
            self.backbone = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Conv2d(4, 4, 3))
    with pytest.raises(ValueError, match=r"first_layer\.input_scale='fixed'"):
        quantize_model(Bare())
    quantize_model(Bare(), dict(first_layer=dict(w_bits=8, a_bits=8,
                                                 input_scale='learned')))


def test_bad_input_scale_value_names_the_key():
    with pytest.raises(ValueError, match=r'first_layer\.input_scale'):
        build_quant_cfg(dict(first_layer=dict(w_bits=8, a_bits=8, input_scale='learn')))
    with pytest.raises(ValueError, match='last_layers'):
        build_quant_cfg(dict(last_layers=dict(w_bits=8, input_scale='fixed')))
