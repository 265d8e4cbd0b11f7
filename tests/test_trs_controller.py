"""The beyond-the-paper options of TRSOptimWrapper: Eq. 11 in log space
(controller='log'), the measured-target factor auto_target_scale and the tracking error
|K - R| / R, against hand-computed values."""
import math

import numpy as np
import pytest
import torch

from test_trs_optim_wrapper import build, loss_fn, qlayers, ref_levels, tiny_model


def _drive(wrapper, ks):
    """Feed Eq. 10 per-step transition rates k (the same in every layer) and return U
    after each update."""
    numels = wrapper.counter.numels
    out = []
    for k in ks:
        wrapper.update_schedule(numels * k)
        out.append(wrapper.talr)
    return out


def test_log_controller_hand_sequence():
    # m = 0.5, eta_log = 0.5, c = log 2, R = 0.01, U^0 = 0.1, no bias correction:
    # k      0.04   0      0       0        0
    # K      0.02   0.01   0.005   0.0025   0.00125
    # log R/K  -log2  0    log2    log4     log8
    # step   -0.5log2 0    0.5log2 log2     min(1.5log2, log2) = log2 (clipped)
    # U      .1/sqrt2 same  0.1     0.2      0.4
    w = build(tiny_model(), tr_momentum=0.5, init_target=0.01, init_talr=0.1,
              controller='log', eta_log=0.5)
    us = _drive(w, [0.04, 0.0, 0.0, 0.0, 0.0])
    assert us == pytest.approx([0.1 / math.sqrt(2), 0.1 / math.sqrt(2), 0.1, 0.2, 0.4],
                               rel=1e-12)
    assert w.running_tr == pytest.approx(0.00125, rel=1e-12)
    assert w.tracking_error == pytest.approx(abs(0.00125 - 0.01) / 0.01, rel=1e-12)


def test_log_controller_target_zero_shrinks_by_clip():
    # R = 0 (end of a cosine schedule): log R is floored, so U falls by e^-c per step
    # and stays positive; the tracking error is undefined (NaN)
    w = build(tiny_model(), tr_momentum=0.0, init_target=0.0, init_talr=0.3,
              controller='log', eta_log=0.1, log_step_clip=0.25)
    us = _drive(w, [1e-3, 1e-3, 1e-3])
    assert us == pytest.approx([0.3 * math.exp(-0.25 * i) for i in (1, 2, 3)], rel=1e-12)
    assert math.isnan(w.tracking_error)


def test_additive_stays_the_default():
    # Eq. 11 by hand: m = 0, eta = 2: U = 0.1 + 2 (0.01 - 0.04) = 0.04, then
    # 0.04 + 2 (0.01 - 0) = 0.06
    w = build(tiny_model(), tr_momentum=0.0, init_target=0.01, init_talr=0.1, eta=2.0)
    assert w.settings.controller == 'additive'
    assert _drive(w, [0.04, 0.0]) == pytest.approx([0.04, 0.06], rel=1e-12)
    assert w.tracking_error == pytest.approx(1.0)  # K = 0, R = 0.01


def test_bias_corrected_tracking_error():
    # m = 0.5, bias correction: K = 0.5 * 0.02 = 0.01, corrected 0.01 / (1 - 0.5) = 0.02
    w = build(tiny_model(), tr_momentum=0.5, init_target=0.01, init_talr=0.1, eta=0.0,
              bias_correction=True)
    _drive(w, [0.02])
    assert w.tracking_error == pytest.approx(1.0, rel=1e-12)


def test_auto_target_scale_multiplies_measured_target():
    model = tiny_model()
    m, n_iters, scale = 0.9, 6, 3.0
    w = build(model, tr_momentum=m, init_target='auto', auto_target_iters=n_iters,
              eta='auto', eta_adapt_iters=10, auto_target_scale=scale)
    K, updates, prev = 0.0, 0, None
    layers = qlayers(model)
    for t in range(n_iters + 1):
        w.backward(loss_fn(model, t))
        now = [ref_levels(q) for q in layers]
        if prev is not None:
            k = sum((a != b).sum() for a, b in zip(now, prev)) / sum(a.size for a in now)
            K = m * K + (1 - m) * k
            updates += 1
        prev = now
        w.step()
        w.zero_grad()
    measured = K / (1 - m ** updates)
    assert measured > 0
    assert w.target_tr == pytest.approx(scale * measured, rel=1e-9)
    # eta='auto' uses the scaled R^0: U^0 / (R^0 * eta_adapt_iters), U^0 = LR 0.05
    assert w.eta == pytest.approx(0.05 / (scale * measured * 10), rel=1e-9)


@pytest.mark.parametrize('key,value', [('controller', 'exp'), ('eta_log', -1.0),
                                       ('log_step_clip', 0.0), ('auto_target_scale', 0)])
def test_bad_values_name_the_key(key, value):
    with pytest.raises(ValueError, match=f'optim_wrapper.{key}'):
        build(tiny_model(), **{key: value})


def test_log_controller_resumes_exactly():
    # state_dict keeps U, K; the controller itself is config, so a resumed run continues
    # the same sequence
    a = build(tiny_model(), tr_momentum=0.5, init_target=0.01, init_talr=0.1,
              controller='log', eta_log=0.5)
    _drive(a, [0.04, 0.0])
    b = build(tiny_model(), tr_momentum=0.5, init_target=0.01, init_talr=0.1,
              controller='log', eta_log=0.5)
    b.load_state_dict(a.state_dict())
    assert _drive(b, [0.0, 0.0]) == pytest.approx([0.1, 0.2], rel=1e-12)
    assert np.isfinite(b.talr)


# ---- the pure controller classes (mmtrs/trs/controller.py), without an optimizer -----

def test_running_rate_by_hand():
    from mmtrs.trs import RunningTransitionRate
    numels = torch.tensor([10.0, 30.0], dtype=torch.float64)
    # global: k = (2 + 6) / 40 = 0.2; K = 0.9 * 0 + 0.1 * 0.2 = 0.02; then k = 0,
    # K = 0.018; corrected K = 0.018 / (1 - 0.81) = 0.0947...
    rate = RunningTransitionRate(0.9)
    rate.update(torch.tensor([2.0, 6.0], dtype=torch.float64), numels)
    assert float(rate.k[0]) == pytest.approx(0.2, rel=1e-15)
    assert float(rate.K[0]) == pytest.approx(0.02, rel=1e-15)
    rate.update(torch.zeros(2, dtype=torch.float64), numels)
    assert float(rate.K[0]) == pytest.approx(0.018, rel=1e-14)
    assert float(rate.corrected()[0]) == pytest.approx(0.018 / 0.19, rel=1e-14)
    assert torch.equal(rate.as_seen(False), rate.K)
    # per layer: k = (0.2, 0.2) here, each layer its own K
    per = RunningTransitionRate(0.5, size=2)
    per.update(torch.tensor([1.0, 9.0], dtype=torch.float64), numels)
    assert per.k.tolist() == pytest.approx([0.1, 0.3], rel=1e-15)
    assert per.K.tolist() == pytest.approx([0.05, 0.15], rel=1e-15)


def test_talr_controller_additive_by_hand():
    from mmtrs.trs import TALRController
    # U = max(0, U + eta (R - K)): 0.1 + 2 * (0.01 - 0.03) = 0.06, then 0.06 + 2 * (0.01 -
    # 0.05) = -0.02 -> clamped to 0
    c = TALRController(1, 0.1, eta=2.0)
    c.update(0.01, torch.tensor([0.03], dtype=torch.float64))
    assert float(c.U[0]) == pytest.approx(0.06, rel=1e-14)
    c.update(0.01, torch.tensor([0.05], dtype=torch.float64))
    assert float(c.U[0]) == 0.0
    c.reset(0.2, 0.5)
    assert float(c.U[0]) == 0.2 and c.eta == 0.5
