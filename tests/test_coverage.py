"""Coverage report at conversion: counts against hand-computed values, the float-share
rule on transformer and conv backbones, and the shipped configs passing it."""
import copy
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from torch import nn

import mmtrs  # noqa: F401
from mmtrs.quant import QConv2d, QLinear, quantize_model
from mmtrs.quant.coverage import Coverage, check_float_share
from mmtrs.quant.layers import FLOAT_LAYER_TYPES, QUANT_LAYER_TYPES

from conftest import ROOT

SWIN_COCO = osp.join(ROOT, 'configs/retinanet_swin-t_w4a4_adamwt.py')


def build(cfg_model):
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    register_all_modules()
    return MODELS.build(copy.deepcopy(cfg_model))


class Net(nn.Module):
    """backbone: conv 3->8 k3 (216 weights), linear 8->16 (128), embedding 10x4 (40),
    a LayerNorm (1-D, not counted); head: linear 16->2 (32)."""

    def __init__(self):
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Linear(8, 16), nn.Embedding(10, 4),
                                      nn.LayerNorm(16))
        self.head = nn.Linear(16, 2)


# a bare model has no data preprocessor to fix the image-input scale from
FIRST = dict(w_bits=8, a_bits=8, input_scale='learned')


def coverage_of(model, **cfg):
    quantize_model(model, dict(cfg, max_float_share=None))
    return Coverage(model, {v[1]: t for t, v in QUANT_LAYER_TYPES.items()},
                    supported=FLOAT_LAYER_TYPES, enabled=cfg.get('quant_types', ('Conv2d', 'Linear')))


def test_counts_by_type_precision_and_scope_match_hand_values():
    cov = coverage_of(Net(), first_layer=FIRST, last_layers=None,
                      last_layer_names=[r'^head$'])
    # backbone: 216 (W8A8 first layer) + 128 (W4A4) quantized, 40 float (Embedding)
    assert cov.by_type(whole=False) == {'Conv2d': (1, 1, 216, 216), 'Linear': (1, 1, 128, 128),
                                        'Embedding': (0, 1, 0, 40)}
    assert cov.float_share() == pytest.approx(40 / 384)
    # the whole model adds the FP head (last_layers=None): 32 float
    assert cov.float_share(whole=True) == pytest.approx(72 / 416)
    assert cov.by_precision() == {'W4A4': (1, 128), 'W8A8': (1, 216), 'float': (2, 72)}
    reasons = {r[0]: r[4] for r in cov.rows}
    assert reasons['backbone.2'] == 'no quantized layer for Embedding in mmtrs'
    assert cov.largest_float(1)[0][0] == 'backbone.2'


def test_float_share_rule_fires_with_module_names_and_keys():
    with pytest.raises(ValueError) as e:
        quantize_model(Net(), dict(quant_types=('Conv2d',), first_layer=FIRST))
    msg = str(e.value)
    # float: linear 128 + embedding 40 of 384
    assert '43.8% of the backbone weights in float' in msg
    assert 'backbone.1 (Linear, 128 weights): type Linear not in quant_cfg.quant_types' in msg
    for key in ('quant_cfg.quant_types', 'quant_cfg.skip', 'quant_cfg.max_float_share'):
        assert key in msg
    # an FP first layer is named as such: 216 + 40 of 384 float
    with pytest.raises(ValueError, match=r'66\.7% of the backbone(.|\n)*backbone\.0 '
                                         r'\(Conv2d, 216 weights\): quant_cfg\.first_layer=None'):
        quantize_model(Net(), dict(first_layer=None))


def test_skip_is_named_as_the_reason():
    with pytest.raises(ValueError, match=r'backbone\.1 \(Linear, 128 weights\): matched by '
                                         r'quant_cfg\.skip'):
        quantize_model(Net(), dict(skip=[r'^backbone\.1$'], max_float_share=0.2,
                                   first_layer=FIRST))


def test_threshold_is_a_bound_not_a_strict_zero():
    # 40 of 384 backbone weights float (10.4%): refused at 0.10, accepted at 0.11
    with pytest.raises(ValueError, match='10.4% of the backbone'):
        quantize_model(Net(), dict(max_float_share=0.10, first_layer=FIRST))
    quantize_model(Net(), dict(max_float_share=0.11, first_layer=FIRST))
    with pytest.raises(ValueError, match='max_float_share'):
        check_float_share(coverage_of(Net(), first_layer=FIRST), 1.5)


def test_swin_with_conv_only_policy_is_refused():
    """The issue's case: a Swin-T child of the W4A4 config that converts only convs left
    ~100% of the backbone float and said 'W4A4'. Now the build fails naming the linears
    and the key."""
    cfg = Config.fromfile(SWIN_COCO)
    cfg.model.quant_cfg.quant_types = ('Conv2d',)
    with pytest.raises(ValueError) as e:
        build(cfg.model)
    msg = str(e.value)
    assert 'of the backbone weights in float' in msg and 'W4A4' in msg
    assert 'ffn.layers' in msg and 'type Linear not in quant_cfg.quant_types' in msg


def test_multihead_attention_projections_are_reported_float():
    """nn.MultiheadAttention (PVT's attention, via mmcv) keeps its projections in
    in_proj_weight and an out_proj whose forward is never called: not converted, and
    reported so, not hidden."""
    model = nn.Module()
    model.backbone = nn.Sequential(nn.Conv2d(3, 4, 1), nn.MultiheadAttention(64, 4))
    with pytest.raises(ValueError) as e:
        quantize_model(model, dict(first_layer=FIRST))
    msg = str(e.value)
    assert 'backbone.1 (MultiheadAttention' in msg and 'in_proj_weight' in msg
    assert 'backbone.1.out_proj (NonDynamicallyQuantizableLinear' in msg
    assert 'subclasses Linear but is not converted' in msg


@pytest.mark.parametrize('cfg_file,overrides', [
    ('configs/demo/retinanet_r18_w4a4_trs_demo.py', {}),
    ('configs/demo/retinanet_r18_w4a4_trs_demo.py', dict(first_layer=None)),  # FP stem
    ('configs/demo/fcos_r18_gn_w4a4_trs_demo.py', {}),
    ('configs/retinanet_r50_w4a4_trs.py', {}),
    ('configs/retinanet_r50_w3a3_sgd.py', dict(first_layer=None)),
    ('configs/demo/retinanet_swin_w4a4_adamwt_demo.py', {}),
])
def test_shipped_configs_pass_the_float_share_rule(cfg_file, overrides):
    """Shipped quantized configs build under the default max_float_share=0.10, also
    with an FP first layer (the README's MobileNetV2 example is built by
    test_quantized_models.py::test_new_backbone_by_inheritance_trains_one_trs_step)."""
    cfg = Config.fromfile(osp.join(ROOT, cfg_file))
    cfg.model.quant_cfg.update(overrides)
    model = build(cfg.model)
    bb = model.backbone
    assert not any(type(m) in (nn.Conv2d, nn.Linear) for n, m in bb.named_modules()
                   if n != ('conv1' if overrides else None))
    assert any(isinstance(m, (QConv2d, QLinear)) for m in bb.modules())



def _readme_backbone_examples():
    text = open(osp.join(ROOT, 'README.md')).read()
    section = text.split('### A new backbone', 1)[1].split('\n## ', 1)[0]
    return [block.split('```', 1)[0] for block in section.split('```python\n')[1:]]


def test_readme_new_backbone_examples_convert_every_conv_and_linear(tmp_path):
    """The README's new-backbone examples (MobileNetV2 and a transformer, Swin-T), as
    written there: every Conv2d and Linear of the backbone is quantized and the build
    passes the float-share rule."""
    blocks = _readme_backbone_examples()
    assert any("'SwinTransformer'" in b for b in blocks) and \
        any("'MobileNetV2'" in b for b in blocks)
    for i, block in enumerate(blocks):
        cfg_file = tmp_path / f'readme_{i}.py'
        cfg_file.write_text(block.replace("'./retinanet_r50", f"'{ROOT}/configs/retinanet_r50"))
        model = build(Config.fromfile(str(cfg_file)).model)
        bb = list(model.backbone.modules())
        assert not any(type(m) in (nn.Conv2d, nn.Linear) for m in bb)
        if 'Swin' in block:
            assert sum(isinstance(m, QLinear) for m in bb) == 51


def test_policy_layers_are_the_layers_the_policy_converts():
    """policy_layers names, on the float model, exactly the layers quantize_model then
    converts: the first layer kept FP and a skipped one are left out of both; the
    Embedding is no converted type."""
    from mmtrs.quant import policy_layers
    net = Net()
    net.backbone.add_module('4', nn.Conv2d(16, 16, 1))
    qcfg = dict(w_bits=4, a_bits=4, first_layer=None, skip=[r'^backbone\.4$'],
                max_float_share=None)
    planned = policy_layers(net, qcfg)
    assert [n for n, _ in planned] == ['backbone.1', 'head']
    assert all(type(m) is nn.Linear for _, m in planned)  # the float layers themselves
    assert [n for n, _ in quantize_model(net, qcfg)] == ['backbone.1', 'head']
