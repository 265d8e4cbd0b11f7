"""The oscillation remedies (docs/methods.md) against hand-computed values and
independent re-implementations: tracking, freezing rules, schedules, losses and their
gradients."""
import math

import numpy as np
import pytest
import torch

import mmtrs  # noqa: F401
from mmtrs.quant import QConv2d, layer_kind
from mmtrs.remedies import (BinRegularizationHook, FrozenWeights, LTSFreezingHook, LTSState,
                            OscillationDampeningHook, OscillationFreezingHook,
                            OscillationState, attach_freezer, bin_regularization_loss,
                            dampening_loss, detach_freezer)
from mmtrs.trs import TransitionCounter


def qlayer(weight, scale, bits=4, groups=1):
    """A QConv2d with the given weight tensor and a set (initialised) weight scale."""
    out_c, in_g, kh, kw = weight.shape
    layer = QConv2d(in_g * groups, out_c, (kh, kw), groups=groups, w_bits=bits, a_bits=None,
                    bias=False)
    layer.weight.data.copy_(weight)
    layer.weight_quantizer.scale.data.fill_(scale)
    layer.weight_quantizer.initialized.fill_(1)
    return layer


# ---- oscillation tracking (Nagel et al.) ------------------------------------------------
def test_oscillation_frequency_by_hand():
    """Weight 0 goes +1, -1, +1, stays, then +1; weight 1 climbs 0 -> 1 -> 2 (never
    oscillates). m = 0.1: f = 0, 0.1, 0.19, 0.171, 0.1539."""
    st = OscillationState(torch.tensor([0, 0]), momentum=0.1)
    expected = [0.0, 0.1, 0.19, 0.171, 0.1539]
    for (a, b), f in zip([(1, 1), (0, 2), (1, 2), (1, 2), (2, 2)], expected):
        st.update(torch.tensor([float(a), float(b)]))
        assert st.freq[0].item() == pytest.approx(f, abs=1e-6)
        assert st.freq[1].item() == 0.0
    # the last change (+1) had the same direction as the one before it: no oscillation
    assert st.last_dir.tolist() == [1, 1]


def test_ema_level_starts_at_current_level():
    st = OscillationState(torch.tensor([2.0]), momentum=0.25)
    st.update(torch.tensor([3.0]), track_ema_level=True)
    assert st.ema_level.item() == 3.0                 # initialised, not averaged
    st.update(torch.tensor([2.0]), track_ema_level=True)
    assert st.ema_level.item() == pytest.approx(0.25 * 2 + 0.75 * 3)


def test_layer_kinds():
    assert layer_kind(QConv2d(8, 8, 3, groups=8, a_bits=None)) == 'depthwise'
    assert layer_kind(QConv2d(8, 16, 1, a_bits=None)) == 'pointwise'
    assert layer_kind(QConv2d(8, 16, 3, a_bits=None)) == 'other'
    assert layer_kind(QConv2d(8, 16, 1, groups=2, a_bits=None)) == 'other'


# ---- schedules ------------------------------------------------------------------------------
def test_freezing_threshold_schedule():
    hook = OscillationFreezingHook(start=0.25, threshold_start=0.1, threshold_end=0.01)
    assert hook.threshold(49, 200) is None                       # first 25%: off
    assert hook.threshold(50, 200) == pytest.approx(0.1)
    # halfway through the cosine: (0.1 + 0.01) / 2
    assert hook.threshold(125, 200) == pytest.approx(0.055)
    t = 80
    p = (t - 50) / 150
    assert hook.threshold(t, 200) == pytest.approx(0.01 + 0.09 * 0.5 * (1 + math.cos(math.pi * p)))
    assert hook.threshold(200, 200) == pytest.approx(0.01)


@pytest.mark.parametrize('cls,lam', [(OscillationDampeningHook, 0.1),
                                     (BinRegularizationHook, 0.01)])
def test_regularizer_weight_schedule(cls, lam):
    hook = cls()
    assert hook.weight(0, 200) == 0.0 and hook.weight(49, 200) == 0.0
    assert hook.weight(50, 200) == pytest.approx(0.0, abs=1e-12)
    assert hook.weight(125, 200) == pytest.approx(lam / 2)
    assert hook.weight(80, 200) == pytest.approx(lam * (1 - math.cos(math.pi * 30 / 150)) / 2)
    assert hook.weight(200, 200) == pytest.approx(lam)


def test_lts_tau_schedules():
    lin = LTSFreezingHook(warmup=0.2)
    assert lin.tau(19, 100) is None
    assert lin.tau(20, 100) == 0.0
    assert lin.tau(60, 100) == pytest.approx(0.5)
    assert lin.tau(100, 100) == pytest.approx(1.0)
    assert LTSFreezingHook(warmup=0.2, tau_schedule='sine').tau(60, 100) == \
        pytest.approx(math.sin(math.pi / 4))
    assert LTSFreezingHook(warmup=0.2, tau_schedule='constant', tau_max=0.3).tau(21, 100) == 0.3


@pytest.mark.parametrize('kw', [dict(momentum=1.0), dict(momentum=0), dict(start=-0.1),
                                dict(threshold_start='0.1'), dict(max_bits=9)])
def test_freezing_hook_refuses_bad_keys(kw):
    with pytest.raises(ValueError, match='OscillationFreezingHook.' + next(iter(kw))):
        OscillationFreezingHook(**kw)


@pytest.mark.parametrize('cls,kw', [(OscillationDampeningHook, dict(lambda_max=-1)),
                                    (BinRegularizationHook, dict(lambda_max=float('nan'))),
                                    (LTSFreezingHook, dict(tau_schedule='cosine')),
                                    (LTSFreezingHook, dict(warmup=2))])
def test_other_hooks_refuse_bad_keys(cls, kw):
    with pytest.raises(ValueError, match=f'{cls.__name__}.{next(iter(kw))}'):
        cls(**kw)


# ---- losses ---------------------------------------------------------------------------------
W = torch.tensor([[[[0.30]], [[-0.95]]],
                  [[[0.61]], [[0.02]]],
                  [[[-0.33]], [[1.20]]]])   # 3 out x 2 in x 1 x 1


def _reference_terms(w, s, bits):
    """numpy: bin centres and clipped weights, written out."""
    alpha, beta, gamma = -2 ** (bits - 1), 2 ** (bits - 1) - 1, 2 ** (bits - 1)
    w = w.astype(np.float64)
    lv = np.clip(np.round(np.clip(gamma * w / s, alpha, beta)), alpha, beta)
    return lv * s / gamma, np.clip(w, s * alpha / gamma, s * beta / gamma), lv


def test_dampening_loss_and_gradient_closed_form():
    layer = qlayer(W, 1.0)
    loss = dampening_loss(layer)
    wq, wc, _ = _reference_terms(W.numpy(), 1.0, 4)
    # by hand for one entry: 0.30 -> 2.4 -> level 2 -> 0.25, (0.25 - 0.30)^2 = 0.0025
    assert wq[0, 0, 0, 0] == 0.25
    per = (wq - wc) ** 2                              # 3 x 2 x 1 x 1
    expected = per.sum(axis=0).mean()                 # sum over out channels, kernel mean
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    loss.backward()
    inside = (W.numpy() >= -1.0) & (W.numpy() <= 0.875)
    grad = 2 * (wc - wq) / 2 * inside                 # mean over the 2 remaining entries
    np.testing.assert_allclose(layer.weight.grad.numpy(), grad, rtol=1e-5, atol=1e-7)
    assert layer.weight.grad[2, 1].item() == 0.0      # 1.20 is clipped: no gradient


def _reference_obr(w, s, bits):
    wq, wc, lv = _reference_terms(w, s, bits)
    total = ((wq - wc) ** 2).mean()
    for level in np.unique(lv):
        members = wc[lv == level]
        if members.size >= 2:
            total += members.var(ddof=1)
    return total


def test_bin_regularization_loss_against_numpy():
    torch.manual_seed(0)
    w = torch.randn(6, 4, 3, 3) * 0.2
    layer = qlayer(w, 0.5, bits=3)
    loss = bin_regularization_loss(layer)
    assert loss.item() == pytest.approx(_reference_obr(w.numpy(), 0.5, 3), rel=1e-5)
    # gradient against finite differences of the numpy reference (float64)
    loss.backward()
    g = layer.weight.grad.numpy()
    base = w.numpy().astype(np.float64)
    for idx in [(0, 0, 0, 0), (3, 2, 1, 1), (5, 3, 2, 2)]:
        eps = 1e-6
        up, down = base.copy(), base.copy()
        up[idx] += eps
        down[idx] -= eps
        fd = (_reference_obr(up, 0.5, 3) - _reference_obr(down, 0.5, 3)) / (2 * eps)
        assert g[idx] == pytest.approx(fd, rel=1e-3, abs=1e-6)


def test_bin_regularization_skips_bins_with_one_weight():
    # levels: 0.30 -> 2 (alone), -0.95 -> -8 (alone), the rest distinct too except two
    w = torch.tensor([0.30, -0.95, 0.61, 0.62]).reshape(4, 1, 1, 1)
    layer = qlayer(w, 1.0)
    wq, wc, _ = _reference_terms(w.numpy(), 1.0, 4)
    expected = ((wq - wc) ** 2).mean() + np.var([0.61, 0.62], ddof=1)
    assert bin_regularization_loss(layer).item() == pytest.approx(expected, rel=1e-5)


# ---- LTS ------------------------------------------------------------------------------------
def test_lts_distance_ema_and_reset_by_hand():
    st = LTSState(torch.tensor([0.0]), momentum=0.5)
    assert st.dist.item() == 1.0                                  # starts at the bin width
    for wn, level, d in [(0.2, 0.0, 0.6), (0.1, 0.0, 0.35), (0.6, 1.0, 1.0),
                         (0.9, 1.0, 0.55)]:
        st.update(torch.tensor([wn]), torch.tensor([level]))
        assert st.dist.item() == pytest.approx(d)


# ---- freezing ---------------------------------------------------------------------------------
@pytest.mark.parametrize('by_level', [True, False])
def test_frozen_weights_never_change_level_under_large_gradients(by_level):
    torch.manual_seed(0)
    layer = qlayer(torch.randn(4, 3, 3, 3) * 0.3, 0.8)
    layer.weight_quantizer.scale.requires_grad_(True)   # a learning scale (plain SGD)
    q = layer.weight_quantizer
    fw = FrozenWeights(layer, by_level)
    levels0 = q.discretize(layer.weight.detach())
    mask = torch.rand_like(layer.weight) < 0.5
    frozen_at = (levels0 + 1).clamp(-8, 7) if by_level else None   # by level: any level
    fw.freeze(mask, frozen_at)
    target = frozen_at if by_level else levels0
    assert torch.equal(q.discretize(layer.weight.detach())[mask], target[mask])
    # huge steps for the weights; the scale learns too (plain SGD), at a sane rate
    opt = torch.optim.SGD([dict(params=[layer.weight]), dict(params=[q.scale], lr=1e-3)],
                          lr=5.0, momentum=0.9, weight_decay=0.1)
    x = torch.randn(2, 3, 8, 8)
    for step in range(5):
        opt.zero_grad()
        (layer(x) * 100).pow(2).mean().backward()
        assert layer.weight.grad[mask].abs().max() == 0          # zero gradient
        if step == 0:  # (later the huge steps push the free weights out of range)
            assert layer.weight.grad[~mask].abs().max() > 1
        opt.step()
        fw.restore()
        assert torch.equal(q.discretize(layer.weight.detach())[mask], target[mask])
    assert q.scale.item() != 0.8          # the scale did move
    fw.remove()


def test_freezing_removes_weights_from_eq5_n():
    layer = qlayer(torch.randn(4, 2, 3, 3), 1.0)
    counter = TransitionCounter([('conv', layer)])
    assert counter.numels.tolist() == [72.0]
    fw = attach_freezer('conv', layer, by_level=False)
    fw.freeze(torch.arange(72).reshape(4, 2, 3, 3) < 10)
    assert counter.numels.tolist() == [62.0]
    with pytest.raises(ValueError, match='two weight-freezing hooks'):
        attach_freezer('conv', layer, by_level=True)
    detach_freezer(layer)
    assert counter.numels.tolist() == [72.0]


METHOD_HOOK = {'oscfreeze': 'OscillationFreezingHook', 'dampen': 'OscillationDampeningHook',
               'lts': 'LTSFreezingHook', 'obr': 'BinRegularizationHook'}


@pytest.mark.parametrize('method', sorted(METHOD_HOOK))
@pytest.mark.parametrize('pattern', ['configs/demo/retinanet_r18_w{b}a{b}_{m}_demo.py',
                                     'configs/demo/retinanet_mbv2_w{b}a{b}_{m}_demo.py',
                                     'configs/retinanet_r50_w{b}a{b}_{m}.py'])
def test_method_configs_carry_their_hook(pattern, method):
    """Every method config (R18 and light-model demos, COCO R50) differs from its SGD
    twin only in custom_hooks, and those hooks build."""
    import os.path as osp
    from mmengine.config import Config
    from mmengine.registry import HOOKS
    from conftest import ROOT
    bits = (4, 3, 2) if 'mbv2' in pattern else (4, 3)
    for b in bits:
        path = osp.join(ROOT, pattern.format(b=b, m=method))
        cfg = Config.fromfile(path)
        sgd = Config.fromfile(path.replace(f'_{method}', '_sgd'))
        a, s = cfg.to_dict(), sgd.to_dict()
        assert {k for k in set(a) | set(s) if a.get(k) != s.get(k)} == {'custom_hooks'}
        assert cfg.model.quant_cfg.w_bits == b
        types = [HOOKS.build(dict(h)).__class__.__name__ for h in cfg.custom_hooks]
        assert METHOD_HOOK[method] in types and 'FiniteLossHook' in types
