"""EffectiveStepSizeHook (paper Figs. 1c/2b step sizes, Fig. 3c-d distances) by hand."""
import json
import types

import pytest
import torch
from mmengine.logging import MessageHub
from torch import nn

import mmtrs  # noqa: F401
from mmtrs.trs import EffectiveStepSizeHook
from mmtrs.quant import QConv2d


def test_step_sizes_and_transition_histogram_by_hand(tmp_path):
    conv = QConv2d(1, 2, 1, w_bits=2, a_bits=4, name='pw')  # 1x1: pointwise
    with torch.no_grad():
        conv.weight_quantizer.scale.fill_(1.0)
        conv.weight.copy_(torch.tensor([0.3, -0.1]).view(2, 1, 1, 1))
    model = nn.Sequential(conv)
    hub = MessageHub.get_instance('test_step_size_hook')
    runner = types.SimpleNamespace(iter=9, model=model, message_hub=hub,
                                   work_dir=str(tmp_path))
    hook = EffectiveStepSizeHook(interval=10, bins=5)
    hook.before_train_iter(runner, 0)
    with torch.no_grad():   # the "optimizer step": w 0.3 -> 0.6, -0.1 -> 0.425
        conv.weight.copy_(torch.tensor([0.6, 0.425]).view(2, 1, 1, 1))
    hook.after_train_iter(runner, 0)
    # 2-bit weights: gamma = 2, x = 2 w / s: 0.6 -> 1.2 and -0.2 -> 0.85 (latent steps
    # 0.6, 1.05); levels round(): 1 -> 1 and 0 -> 1 (steps 0, 1)
    assert hub.get_scalar('train/step/latent').current() == pytest.approx(0.825)
    assert hub.get_scalar('train/step/quantized').current() == pytest.approx(0.5)
    assert hub.get_scalar('train/step/quantized_pointwise').current() == pytest.approx(0.5)
    hook.after_train(runner)
    # distances to the nearest transition point (half-integers in [-1.5, 0.5] for levels
    # -2..1): x = 1.2 -> 0.7 (clipped to 0.5: last bin), 0.85 -> 0.35 (bin [0.3, 0.4))
    out = json.load(open(tmp_path / 'latent_near_transition.json'))
    assert out['fraction']['pointwise'] == pytest.approx([0, 0, 0, 0.5, 0.5])
    assert out['fraction']['depthwise'] is None


def test_bad_interval_names_the_key():
    with pytest.raises(ValueError, match='EffectiveStepSizeHook.interval'):
        EffectiveStepSizeHook(interval=0)
