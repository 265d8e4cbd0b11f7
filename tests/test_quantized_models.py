"""Model conversion: QConv2d, policy, FP checkpoint loading, W8A8 ~ FP, new backbones."""
import copy
import os.path as osp

import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper

import mmtrs  # noqa: F401
from mmtrs.quant import (NegativeInputError, QConv2d, build_quant_cfg, calibrate_quantizers,
                         quantize_model)

from conftest import ROOT, load_without_warnings

DEMO_FP = osp.join(ROOT, 'configs/demo/retinanet_r18_fp_demo.py')


def build(cfg_model):
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    register_all_modules()
    return MODELS.build(copy.deepcopy(cfg_model))


def demo_model_cfg(quant_cfg=None):
    cfg = Config.fromfile(DEMO_FP)
    m = copy.deepcopy(cfg.model)
    if quant_cfg is not None:
        m.update(type='QuantizedDetector', detector_type='RetinaNet', quant_cfg=quant_cfg)
    return m


def test_qconv_matches_independent_fake_quant_conv():
    torch.manual_seed(0)
    q = QConv2d(4, 6, 3, padding=1, bias=True, w_bits=4, a_bits=4, a_signed=False)
    x = torch.relu(torch.randn(2, 4, 5, 5))
    q.train()
    y = q(x)
    s_w, s_a = float(q.weight_quantizer.scale), float(q.act_quantizer.scale)
    assert s_w == pytest.approx(3 * float(q.weight.std()), rel=1e-5)
    # independent: LSQ-style fake quantization with step s/gamma, then FP conv
    wq = torch.clamp(torch.round(8 * q.weight / s_w), -8, 7) * s_w / 8
    xq = torch.clamp(torch.round(16 * x / s_a), 0, 15) * s_a / 16
    ref = F.conv2d(xq, wq, q.bias, padding=1)
    torch.testing.assert_close(y, ref, rtol=1e-5, atol=1e-5)


def test_policy_on_demo_retinanet():
    model = build(demo_model_cfg(dict(w_bits=4, a_bits=4)))
    qs = {n: m for n, m in model.named_modules() if isinstance(m, QConv2d)}
    convs = [n for n, m in model.named_modules() if type(m) is torch.nn.Conv2d]
    assert not convs, f'unquantized convs left: {convs}'
    assert qs['backbone.conv1'].weight_quantizer.bits == 8            # first layer
    assert qs['bbox_head.retina_cls'].weight_quantizer.bits == 8      # last layers
    assert qs['bbox_head.retina_reg'].act_quantizer.bits == 8
    assert qs['backbone.layer2.0.conv1'].weight_quantizer.bits == 4
    assert qs['neck.fpn_convs.0.conv'].act_quantizer.bits == 4
    fp_model = build(demo_model_cfg(dict(w_bits=4, a_bits=4, first_layer=None,
                                         last_layers=None)))
    names = {n for n, m in fp_model.named_modules() if isinstance(m, QConv2d)}
    assert 'backbone.conv1' not in names and 'bbox_head.retina_cls' not in names


@pytest.mark.parametrize('bad,match', [
    (dict(w_bits=0), 'w_bits'), (dict(a_bits=9), 'a_bits'), (dict(w_bits=4.5), 'w_bits'),
    (dict(first_layer=dict(w_bits=16)), 'first_layer'), (dict(wbits=4), 'Unknown'),
    (dict(quant_types=('Conv3d',)), 'quant_types')])
def test_policy_rejects_bad_keys(bad, match):
    with pytest.raises((ValueError, KeyError), match=match):
        build_quant_cfg(bad)


def test_fp_checkpoint_loads_and_w8a8_matches_fp(tmp_path):
    torch.manual_seed(0)
    fp = build(demo_model_cfg())
    fp.init_weights()
    ckpt = tmp_path / 'fp.pth'
    torch.save({'state_dict': fp.state_dict(), 'meta': {}}, ckpt)
    # One clipping range for every layer (6 std). The range trades clipping against
    # resolution; on these random-init weights 3 std (clipping) and 12 std (resolution,
    # the P7 level has few values) both give ~0.986-0.990 at P7. The AP check of the
    # trained demo model (tests/test_end_to_end.py, docs/results.md) uses 12 std.
    w8 = dict(w_bits=8, a_bits=8, init_mult=6.0)
    q = build(demo_model_cfg(dict(w8, first_layer=w8, last_layers=w8)))
    # every FP tensor is used; the missing quantizer entries are not reported
    assert not load_without_warnings(q, ckpt)
    q_sd = q.state_dict()
    for k, v in fp.state_dict().items():
        assert torch.equal(q_sd[k], v), k
    x = torch.randn(2, 3, 128, 128)
    fp.eval()
    calibrate_quantizers(q, lambda: q.bbox_head(q.extract_feat(x)))
    q.eval()
    with torch.no_grad():
        out_fp = fp.bbox_head(fp.extract_feat(x))
        out_q = q.bbox_head(q.extract_feat(x))
    for a_list, b_list in zip(out_fp, out_q):
        for a, b in zip(a_list, b_list):
            cos = F.cosine_similarity(a.flatten(), b.flatten(), dim=0)
            assert cos > 0.99, float(cos)


def test_w4a4_is_not_identical_to_fp():
    """Guard against a conversion that silently does nothing."""
    torch.manual_seed(0)
    fp = build(demo_model_cfg())
    q = build(demo_model_cfg(dict(w_bits=2, a_bits=2)))
    q.load_state_dict(fp.state_dict(), strict=False)
    x = torch.randn(1, 3, 64, 64)
    calibrate_quantizers(q, lambda: q.extract_feat(x))
    fp.eval(), q.eval()
    with torch.no_grad():
        a = fp.extract_feat(x)[0]
        b = q.extract_feat(x)[0]
    assert F.cosine_similarity(a.flatten(), b.flatten(), dim=0) < 0.999


def test_unsigned_act_with_negative_input_fails_at_init_with_module_name():
    model = build(demo_model_cfg(dict(unsigned_act=[r'^neck\.fpn_convs\.0\.conv$'])))
    x = torch.randn(1, 3, 64, 64)
    with pytest.raises(NegativeInputError, match=r'neck\.fpn_convs\.0\.conv'):
        calibrate_quantizers(model, lambda: model.extract_feat(x))


def test_auto_sign_picks_signed_only_where_input_is_negative():
    model = build(demo_model_cfg(dict()))
    x = torch.randn(2, 3, 64, 64)
    calibrate_quantizers(model, lambda: model.bbox_head(model.extract_feat(x)))
    signed = {n for n, m in model.named_modules()
              if isinstance(m, QConv2d) and m.act_quantizer.signed}
    # image input, FPN outputs of lateral sums (no ReLU) feed these convs
    assert 'backbone.conv1' in signed
    assert 'bbox_head.cls_convs.0.conv' in signed
    # post-ReLU inputs stay unsigned
    assert 'backbone.layer1.0.conv2' not in signed
    assert 'bbox_head.cls_convs.1.conv' not in signed
    assert 'bbox_head.retina_cls' not in signed


def test_new_backbone_by_inheritance_trains_one_trs_step(tmp_path):
    """A user inherits the R50 W4A4 TRS config and overrides only model.backbone (and
    the neck's in_channels): the new backbone is quantized by the same policy."""
    cfg_file = tmp_path / 'retinanet_mnv2_w4a4_trs.py'
    cfg_file.write_text(
        f"_base_ = ['{ROOT}/configs/retinanet_r50_w4a4_trs.py']\n"
        "model = dict(\n"
        "    backbone=dict(_delete_=True, type='MobileNetV2', out_indices=(1, 2, 4, 6),\n"
        "                  init_cfg=None),\n"
        "    neck=dict(in_channels=[24, 32, 96, 320]))\n")
    cfg = Config.fromfile(str(cfg_file))
    model = build(cfg.model)
    qs = {n: m for n, m in model.named_modules() if isinstance(m, QConv2d)}
    bb = [n for n in qs if n.startswith('backbone.')]
    assert len(bb) > 40
    assert qs[bb[0]].weight_quantizer.bits == 8                 # its first conv
    assert all(qs[n].weight_quantizer.bits == 4 for n in bb[1:])
    assert not any(type(m) is torch.nn.Conv2d for m in model.modules())
    wrapper = build_optim_wrapper(model, copy.deepcopy(cfg.optim_wrapper))
    log_vars = train_steps(model, wrapper, 2)
    assert torch.isfinite(log_vars['loss'])
    assert wrapper.steps == 2 and wrapper.talr > 0


def train_steps(model, wrapper, n):
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData
    samples = []
    for i in range(2):  # batch 2: the BN head needs more than one value at P7 (1x1)
        sample = DetDataSample(metainfo=dict(img_shape=(128, 128), pad_shape=(128, 128),
                                             batch_input_shape=(128, 128),
                                             scale_factor=(1, 1)))
        sample.gt_instances = InstanceData(bboxes=torch.tensor([[10., 10., 50., 60. + i]]),
                                           labels=torch.tensor([3]))
        samples.append(sample)
    data = dict(inputs=[torch.randint(0, 255, (3, 128, 128), dtype=torch.uint8)
                        for _ in range(2)], data_samples=samples)
    model.train()
    for _ in range(n):
        log_vars = model.train_step(data, wrapper)
    return log_vars


def test_frozen_backbone_stages_train_and_are_not_tr_scheduled():
    """The R50 TRS config with MMDetection's usual frozen_stages=1: the frozen stem and
    layer1 (in eval mode while training) still get their scales from the first batch,
    their scales are frozen before any DDP wrapping, and TR scheduling leaves them out."""
    cfg = Config.fromfile(osp.join(ROOT, 'configs/retinanet_r50_w4a4_trs.py'))
    cfg.model.backbone.frozen_stages = 1
    model = build(cfg.model)
    stem, l1 = model.backbone.conv1, model.backbone.layer1[0].conv1
    l2 = model.backbone.layer2[0].conv1
    # right after the build, as DDP would see it
    for q in (stem, l1):
        assert not q.weight.requires_grad
        assert not q.weight_quantizer.scale.requires_grad
        assert not q.act_quantizer.scale.requires_grad
    assert l2.act_quantizer.scale.requires_grad
    wrapper = build_optim_wrapper(model, copy.deepcopy(cfg.optim_wrapper))
    w1 = l1.weight.detach().clone()
    log_vars = train_steps(model, wrapper, 2)
    assert torch.isfinite(log_vars['loss'])
    assert not l1.training and l1.act_quantizer.is_initialized
    assert torch.equal(l1.weight, w1)
    names = wrapper.counter.names
    assert 'backbone.layer2.0.conv1' in names
    assert not any(n.startswith(('backbone.conv1', 'backbone.layer1.')) for n in names)


@pytest.mark.parametrize('cfg_name', ['retinanet_r18_w1a1_sgd_demo.py',
                                      'retinanet_r18_w1a1_trs_demo.py'])
def test_binary_demo_configs_train(cfg_name):
    cfg = Config.fromfile(osp.join(ROOT, 'configs/demo', cfg_name))
    torch.manual_seed(0)
    model = build(cfg.model)
    body = model.backbone.layer2[0].conv1
    assert body.weight_quantizer.bits == 1 and body.act_quantizer.bits == 1
    wrapper = build_optim_wrapper(model, copy.deepcopy(cfg.optim_wrapper))
    log_vars = train_steps(model, wrapper, 2)
    assert torch.isfinite(log_vars['loss'])
    levels = body.weight_quantizer.discretize(body.weight)
    assert set(levels.unique().tolist()) == {-1.0, 1.0}
    assert set(body.act_quantizer.discretize(torch.rand(100)).unique().tolist()) <= {0.0, 1.0}


def test_qconv2d_through_mmcv_conv_cfg():
    """`conv_cfg=dict(type='QConv2d', ...)` builds through mmcv's ConvModule."""
    from mmcv.cnn import ConvModule
    from mmdet.utils import register_all_modules
    register_all_modules()
    m = ConvModule(4, 8, 3, padding=1, norm_cfg=dict(type='BN'),
                   conv_cfg=dict(type='QConv2d', w_bits=3, a_bits=4, a_signed=False))
    assert isinstance(m.conv, QConv2d) and m.conv.weight_quantizer.bits == 3
    y = m(torch.rand(2, 4, 6, 6))
    assert y.shape == (2, 8, 6, 6) and m.conv.act_quantizer.is_initialized


def test_post_scale_only_on_convs_without_a_norm_layer():
    model = build(demo_model_cfg(dict(post_scale=True)))
    q = dict(model.named_modules())
    assert q['bbox_head.retina_cls'].post_scale is not None        # no norm after it
    assert q['bbox_head.retina_reg'].post_scale is not None
    assert q['backbone.layer1.0.conv1'].post_scale is None         # bn1 follows
    assert q['backbone.layer2.0.downsample.0'].post_scale is None  # Sequential(conv, bn)
    assert q['neck.fpn_convs.0.conv'].post_scale is None           # ConvModule with BN
    assert q['bbox_head.cls_convs.0.conv'].post_scale is None      # ConvModule with GN
    x = torch.randn(1, 3, 64, 64)
    calibrate_quantizers(model, lambda: model.bbox_head(model.extract_feat(x)))
    p = q['bbox_head.retina_cls'].post_scale
    model.eval()
    with torch.no_grad():
        a = model.bbox_head(model.extract_feat(x))[0][0]
        p.fill_(2.0)
        b = model.bbox_head(model.extract_feat(x))[0][0]
    bias = q['bbox_head.retina_cls'].bias.view(1, -1, 1, 1)
    torch.testing.assert_close(b - bias, 2 * (a - bias), rtol=1e-4, atol=1e-5)
