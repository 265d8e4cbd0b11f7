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
