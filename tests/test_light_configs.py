"""The light-model study configs: every MobileNetV2 RetinaNet demo config and
the COCO R50 W2A2 twins build and train two steps on a synthetic 128 px batch; depthwise
convs are quantized at the body bit-width and the conversion counts layer kinds."""
import copy
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper

import mmtrs  # noqa: F401
from mmtrs.quant import QConv2d
from mmtrs.quant import layer_kind
from mmtrs.quant.coverage import conv_kind_counts
from mmtrs.quant import quantized_layers

from conftest import ROOT
from test_quantized_models import build, train_steps

BITS = (4, 3, 2)
OPTS = ('sgd', 'trs', 'adam', 'adamt')
QAT = [(f'configs/demo/retinanet_mbv2_w{b}a{b}_{o}_demo.py', b, o) for b in BITS for o in OPTS]
QAT += [(f'configs/retinanet_r50_w2a2_{o}.py', 2, o) for o in ('sgd', 'trs')]
FP = ['configs/demo/retinanet_mbv2_fp_demo.py', 'configs/demo/retinanet_mbv2_fp_ft_demo.py',
      'configs/demo/retinanet_mbv2_fp_ft_adam_demo.py']

# MobileNetV2 (mmdet arch settings: 1+2+3+4+3+3+1 = 17 inverted residual blocks, the
# first without expansion): 17 depthwise 3x3; 16 expansion + 17 projection 1x1 + the
# final 1x1 conv2 = 34 pointwise, plus 3 FPN laterals (1x1) = 37; other: stem 3x3, 3 FPN
# output convs + 2 extra (P6, P7), 2 + 2 head convs, retina_cls, retina_reg = 12.
MBV2_KINDS = dict(depthwise=17, pointwise=37, other=12)


def _step(cfg):
    torch.manual_seed(0)
    model = build(cfg.model)
    wrapper = build_optim_wrapper(model, copy.deepcopy(cfg.optim_wrapper))
    log_vars = train_steps(model, wrapper, 2)
    assert torch.isfinite(log_vars['loss'])
    return model, wrapper


@pytest.mark.parametrize('path', FP)
def test_fp_light_configs_train(path):
    cfg = Config.fromfile(osp.join(ROOT, path))
    assert cfg.model.backbone.type == 'MobileNetV2'
    model, _ = _step(cfg)
    assert not any(isinstance(m, QConv2d) for m in model.modules())


@pytest.mark.parametrize('path,bits,opt', QAT, ids=[osp.basename(p) for p, _, _ in QAT])
def test_qat_light_configs_train(path, bits, opt):
    cfg = Config.fromfile(osp.join(ROOT, path))
    model, wrapper = _step(cfg)
    layers = quantized_layers(model)
    body = [m for n, m in layers if n.startswith('neck.')]
    assert body and all(m.weight_quantizer.bits == bits for m in body)
    is_trs = opt in ('trs', 'adamt')
    assert (type(wrapper).__name__ == 'TRSOptimWrapper') == is_trs
    if is_trs:
        assert wrapper.settings.controller == 'additive'  # the paper's Eq. 11 is the default
        assert wrapper.steps == 2
    assert type(wrapper.optimizer).__name__ == ('Adam' if opt.startswith('adam') else 'SGD')
    if 'mbv2' not in path:
        return
    assert cfg.train_cfg.max_iters >= 450  # at least 3x the R18 study's 150 iterations
    dw = [(n, m) for n, m in layers if layer_kind(m) == 'depthwise']
    assert all(n.startswith('backbone.') and m.weight_quantizer.bits == bits and
               m.act_quantizer.bits == bits for n, m in dw)
    assert conv_kind_counts(layers) == MBV2_KINDS
    assert model.backbone.conv1.conv.weight_quantizer.bits == 8  # first layer kept at 8


@pytest.mark.parametrize('path', FP[1:])
def test_fp_finetune_splits_the_weights_qat_quantizes(path):
    """The FP reference with FloatWeightLRConstructor: exactly the weights of the 66
    convs the W4A4 policy quantizes (MBV2_KINDS) step at 1/3 of the LR, and two steps
    train."""
    cfg = Config.fromfile(osp.join(ROOT, path))
    cfg.optim_wrapper.update(constructor='FloatWeightLRConstructor', weight_lr_mult=1 / 3)
    model, wrapper = _step(cfg)
    lr = cfg.optim_wrapper.optimizer.lr
    own = [g for g in wrapper.optimizer.param_groups if g['lr'] == pytest.approx(lr / 3)]
    convs = {id(m.weight) for m in model.modules() if isinstance(m, torch.nn.Conv2d)}
    assert len(own) == sum(MBV2_KINDS.values()) == len(convs)
    assert {id(p) for g in own for p in g['params']} == convs


def test_conv_kind_counts_by_hand():
    layers = [('dw', torch.nn.Conv2d(8, 8, 3, groups=8)), ('pw', torch.nn.Conv2d(8, 16, 1)),
              ('grouped', torch.nn.Conv2d(8, 16, 3, groups=2)),  # grouped, not depthwise
              ('dw1x1', torch.nn.Conv2d(4, 4, 1, groups=4)), ('fc', torch.nn.Linear(3, 2))]
    assert conv_kind_counts(layers) == dict(depthwise=2, pointwise=1, other=2)
