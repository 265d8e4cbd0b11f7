"""Quantized layers that keep x, not x_q, for their backward pass (`recompute_input`):
x_q is freed after the forward pass, recomputed in the backward pass, and every value
and gradient equals, bit for bit, that of the layer which keeps x_q."""
import copy
import weakref

import pytest
import torch

from mmtrs.quant import QConv2d, QLinear, Quantizer


def conv(**kw):
    return QConv2d(8, 8, 3, padding=1, **kw)


def depthwise(**kw):
    return QConv2d(8, 8, 3, stride=2, padding=1, groups=8, **kw)


def pointwise(**kw):
    return QConv2d(8, 16, 1, bias=False, **kw)


def linear(**kw):
    return QLinear(8, 5, **kw)


LAYERS = dict(conv=(conv, (4, 8, 9, 9)), depthwise=(depthwise, (4, 8, 9, 9)),
              pointwise=(pointwise, (4, 8, 6, 6)), linear=(linear, (6, 8)),
              # tokens of a transformer: F.linear saves a flattened view of x_q
              linear_3d=(linear, (2, 7, 8)))


def pair(kind, bits, signed, learn_act_scale=True):
    """The same layer twice, keeping x_q and recomputing it, with the same weights."""
    make, shape = LAYERS[kind]
    torch.manual_seed(bits)
    keep = make(w_bits=bits, a_bits=bits, a_signed=signed, recompute_input=False,
                learn_act_scale=learn_act_scale)
    recompute = copy.deepcopy(keep)
    recompute.recompute_input = True
    return keep, recompute, shape


def step(layer, x0, signed):
    """Two forward/backward passes (the first initializes the scales); the gradients of
    the second and its output."""
    for _ in range(2):
        layer.zero_grad()
        x = x0.clone().requires_grad_(True)
        inp = x if signed else torch.relu(x)  # an unsigned quantizer's input is >= 0
        y = layer(inp)
        (y * torch.linspace(-1, 1, y.numel()).reshape(y.shape)).sum().backward()
    grads = {n: p.grad.clone() for n, p in layer.named_parameters() if p.grad is not None}
    return y.detach(), x.grad, grads


@pytest.mark.parametrize('kind', sorted(LAYERS))
@pytest.mark.parametrize('bits,signed', [(4, False), (2, True), (1, False), (3, True)])
def test_gradients_equal_those_of_the_layer_keeping_x_q(kind, bits, signed):
    keep, recompute, shape = pair(kind, bits, signed)
    x0 = torch.randn(shape)
    calls = []
    requantize = Quantizer.requantize

    def spy(self, x):
        calls.append(self)
        return requantize(self, x)

    y_keep, gx_keep, g_keep = step(keep, x0, signed)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Quantizer, 'requantize', spy)
        y_rec, gx_rec, g_rec = step(recompute, x0, signed)
        assert not [q for q in calls if q is not recompute.act_quantizer]
        assert len(calls) == 2, 'x_q is recomputed once per backward pass'
    assert torch.equal(y_keep, y_rec)
    assert torch.equal(gx_keep, gx_rec)
    assert sorted(g_keep) == sorted(g_rec)
    # weight, bias, both scales: the recomputed x_q is the input of the weight gradient
    assert {'weight', 'weight_quantizer.scale', 'act_quantizer.scale'} <= set(g_keep)
    for name in g_keep:
        assert torch.equal(g_keep[name], g_rec[name]), name


def x_q_alive_after_forward(layer, x):
    """Whether the activation quantizer's output is still held once forward returns."""
    refs = []
    handle = layer.act_quantizer.register_forward_hook(
        lambda m, args, out: refs.append(weakref.ref(out)))
    y = layer(x)
    handle.remove()
    alive = refs[0]() is not None
    y.sum().backward()  # the graph is still usable
    return alive


@pytest.mark.parametrize('kind', ['conv', 'depthwise', 'linear', 'linear_3d'])
def test_x_q_is_freed_after_forward_only_when_recomputed(kind):
    keep, recompute, shape = pair(kind, 4, False)
    x = torch.relu(torch.randn(shape)).requires_grad_(True)
    assert x_q_alive_after_forward(keep, x)  # the op's autograd node holds it
    assert not x_q_alive_after_forward(recompute, x)


def test_frozen_activation_scale_and_no_grad_paths():
    keep, recompute, shape = pair('conv', 4, False, learn_act_scale=False)
    x0 = torch.randn(shape)
    y_keep, gx_keep, g_keep = step(keep, x0, False)
    y_rec, gx_rec, g_rec = step(recompute, x0, False)
    assert torch.equal(gx_keep, gx_rec)
    assert 'act_quantizer.scale' not in g_rec
    for name in g_keep:
        assert torch.equal(g_keep[name], g_rec[name]), name
    with torch.no_grad():  # evaluation: nothing is saved, nothing recomputed
        assert torch.equal(keep(torch.relu(x0)), recompute(torch.relu(x0)))


def test_policy_key_reaches_every_layer():
    from mmtrs.quant import build_quant_cfg, quantize_model
    from mmtrs.utils.config_schema import ConfigSchemaError
    assert build_quant_cfg()['recompute_input'] is True
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(),
                                torch.nn.Conv2d(8, 8, 3), torch.nn.ReLU(),
                                torch.nn.Conv2d(8, 4, 1))
    converted = quantize_model(model, dict(recompute_input=False, first_layer=None,
                                           max_float_share=None))
    assert converted and all(q.recompute_input is False for _, q in converted)
    with pytest.raises(ConfigSchemaError, match='quant_cfg.recompute_input'):
        build_quant_cfg(dict(recompute_input='yes'))


@pytest.mark.parametrize('opt', ['sgd', 'trs'])
def test_light_detector_trains_identically_with_and_without_recompute(opt):
    """The MobileNetV2 RetinaNet (depthwise, pointwise, strided, signed and unsigned
    inputs, the 8-bit first and last layers) trained 3 steps both ways: every parameter
    and buffer equal bit for bit (TR scheduling's counts and TALR included)."""
    import os.path as osp

    from mmengine.config import Config
    from mmengine.optim import build_optim_wrapper

    from conftest import ROOT
    from test_quantized_models import build, train_steps
    states = []
    for recompute in (False, True):
        cfg = Config.fromfile(osp.join(ROOT, f'configs/demo/retinanet_mbv2_w3a3_{opt}_demo.py'))
        cfg.model.quant_cfg.recompute_input = recompute
        torch.manual_seed(0)
        model = build(cfg.model)
        wrapper = build_optim_wrapper(model, copy.deepcopy(cfg.optim_wrapper))
        log_vars = train_steps(model, wrapper, 3)
        states.append((model.state_dict(), float(log_vars['loss'])))
    (keep, loss_keep), (recomputed, loss_rec) = states
    assert loss_keep == loss_rec
    assert keep.keys() == recomputed.keys()
    for k in keep:
        assert torch.equal(keep[k], recomputed[k]), k
