"""QuantWeightLRConstructor: plain QAT whose quantized weights have an LR of their own
(the control for TR scheduling in the light-model study)."""
import math

import pytest
import torch
from mmengine.optim import build_optim_wrapper
from mmengine.optim.scheduler import CosineAnnealingLR
from torch import nn

import mmtrs  # noqa: F401  (registers the constructor)
from mmtrs.quant import QConv2d
from mmtrs.utils.config_schema import ConfigSchemaError


def model():
    return nn.Sequential(QConv2d(3, 8, 3, w_bits=4, a_bits=4), nn.BatchNorm2d(8),
                         nn.Conv2d(8, 4, 1))


def cfg(**kw):
    return dict(type='OptimWrapper', constructor='QuantWeightLRConstructor',
                optimizer=dict(type='SGD', lr=0.08, momentum=0.9), **kw)


def lr_of(wrapper, param):
    return [g['lr'] for g in wrapper.optimizer.param_groups
            if any(p is param for p in g['params'])]


def test_quantized_weights_get_their_own_lr_under_the_schedule():
    m = model()
    wrapper = build_optim_wrapper(m, cfg(quant_weight_lr_mult=0.1))
    params = list(m.parameters())
    assert sum(len(g['params']) for g in wrapper.optimizer.param_groups) == len(params)
    assert lr_of(wrapper, m[0].weight) == [pytest.approx(0.008)]
    for p in (m[0].bias, m[0].weight_quantizer.scale, m[0].act_quantizer.scale, m[1].weight,
              m[2].weight):
        assert lr_of(wrapper, p) == [0.08]
    sched = CosineAnnealingLR(wrapper, T_max=10, by_epoch=False)
    for _ in range(4):
        wrapper.optimizer.step()
        sched.step()
    cos = (1 + math.cos(math.pi * 4 / 10)) / 2       # by hand: the cosine at step 4
    assert lr_of(wrapper, m[2].weight)[0] == pytest.approx(0.08 * cos)
    assert lr_of(wrapper, m[0].weight)[0] == pytest.approx(0.008 * cos)


@pytest.mark.parametrize('bad', [0, -1.0, float('nan'), '0.1', True])
def test_bad_multiplier_is_refused_naming_the_key(bad):
    with pytest.raises(ConfigSchemaError, match=r'optim_wrapper.quant_weight_lr_mult='):
        build_optim_wrapper(model(), cfg(quant_weight_lr_mult=bad))


def test_model_without_quantized_layers_is_refused():
    with pytest.raises(ValueError, match='found no quantized layer'):
        build_optim_wrapper(nn.Sequential(nn.Conv2d(3, 4, 1)), cfg(quant_weight_lr_mult=0.5))


def test_a_step_moves_quantized_weights_by_their_lr():
    """Plain SGD without momentum: the update is lr x grad, with the quantized weight's
    own LR."""
    torch.manual_seed(0)
    m = model()
    wrapper = build_optim_wrapper(m, dict(
        type='OptimWrapper', constructor='QuantWeightLRConstructor', quant_weight_lr_mult=0.25,
        optimizer=dict(type='SGD', lr=0.1)))
    m.train()
    m(torch.randn(4, 3, 8, 8)).sum().backward()
    w0, g0 = m[0].weight.detach().clone(), m[0].weight.grad.clone()
    c0, cg = m[2].weight.detach().clone(), m[2].weight.grad.clone()
    wrapper.step()
    assert torch.allclose(m[0].weight.detach(), w0 - 0.025 * g0)
    assert torch.allclose(m[2].weight.detach(), c0 - 0.1 * cg)


# ---- FloatWeightLRConstructor: the same split for the unquantized reference -------------

def float_model():
    """A 'backbone' (the first conv the policy would convert at 8 bits), a body conv, a
    BN and a linear head: the default policy converts all three layers."""
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.backbone = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8),
                                          nn.Conv2d(8, 8, 1))
            self.fc = nn.Linear(8, 2)

        def forward(self, x):
            return self.fc(self.backbone(x).mean((2, 3)))
    return Net()


def float_cfg(**kw):
    return dict(type='OptimWrapper', constructor='FloatWeightLRConstructor',
                optimizer=dict(type='SGD', lr=0.3), **kw)


def test_float_model_conv_and_linear_weights_get_their_own_lr():
    m = float_model()
    m.backbone[2].weight.requires_grad_(False)  # frozen: stays in the ordinary group
    wrapper = build_optim_wrapper(m, float_cfg(weight_lr_mult=1 / 3))
    for p in (m.backbone[0].weight, m.fc.weight):
        assert lr_of(wrapper, p) == [pytest.approx(0.1)]
    for p in (m.backbone[0].bias, m.backbone[1].weight, m.backbone[1].bias,
              m.backbone[2].weight, m.backbone[2].bias, m.fc.bias):
        assert lr_of(wrapper, p) == [0.3]


def test_float_step_moves_weights_by_their_lr():
    torch.manual_seed(0)
    m = float_model()
    wrapper = build_optim_wrapper(m, float_cfg(weight_lr_mult=2.0))
    m(torch.randn(2, 3, 8, 8)).sum().backward()
    before = {n: (p.detach().clone(), p.grad.clone()) for n, p in m.named_parameters()}
    wrapper.step()
    for n, p in m.named_parameters():
        w, g = before[n]
        lr = 0.6 if n in ('backbone.0.weight', 'backbone.2.weight', 'fc.weight') else 0.3
        assert torch.allclose(p.detach(), w - lr * g), n


@pytest.mark.parametrize('bad', [0, -2.0, float('inf'), '3', False])
def test_float_bad_multiplier_is_refused_naming_the_key(bad):
    with pytest.raises(ConfigSchemaError, match=r'optim_wrapper.weight_lr_mult='):
        build_optim_wrapper(float_model(), float_cfg(weight_lr_mult=bad))


def test_each_constructor_refuses_the_other_kind_of_model():
    with pytest.raises(ValueError, match='unquantized model.*QuantWeightLRConstructor'):
        build_optim_wrapper(model(), float_cfg(weight_lr_mult=0.5))
    with pytest.raises(ValueError, match='found no quantized layer.*FloatWeightLRConstructor'):
        build_optim_wrapper(float_model(), cfg(quant_weight_lr_mult=0.5))
    with pytest.raises(ValueError, match='no trainable Conv2d or Linear'):
        build_optim_wrapper(nn.Sequential(nn.BatchNorm2d(3)), float_cfg(weight_lr_mult=0.5))
