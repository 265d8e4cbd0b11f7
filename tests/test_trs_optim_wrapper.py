"""TRSOptimWrapper against an independent re-implementation of Eqs. 5, 10-12."""
import copy

import numpy as np
import pytest
import torch
from mmengine.optim import build_optim_wrapper
from mmengine.optim.scheduler import CosineAnnealingLR, CosineAnnealingParamScheduler
from torch import nn

import mmtrs  # noqa: F401
from mmtrs.quant import QConv2d


def tiny_model(seed=0, learn_weight_scale=False):
    torch.manual_seed(seed)
    kw = dict(w_bits=3, a_bits=4, learn_weight_scale=learn_weight_scale)
    return nn.Sequential(
        QConv2d(3, 8, 3, padding=1, name='c0', **kw), nn.ReLU(),
        QConv2d(8, 8, 3, padding=1, name='c1', **kw), nn.ReLU(),
        QConv2d(8, 4, 1, name='c2', **kw))


def batch(seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(4, 3, 8, 8, generator=g), torch.randn(4, 4, 8, 8, generator=g)


def loss_fn(model, seed):
    x, y = batch(seed)
    return ((model(x) - y) ** 2).mean()


def build(model, optimizer=None, **kw):
    cfg = dict(type='TRSOptimWrapper', constructor='TRSOptimWrapperConstructor',
               optimizer=optimizer or dict(type='SGD', lr=0.05, momentum=0.9,
                                           weight_decay=1e-3))
    cfg.update(kw)
    return build_optim_wrapper(model, cfg)


def ref_levels(layer):
    """Independent Eq. 13 levels in numpy (float64)."""
    w = layer.weight.detach().double().numpy()
    s = float(layer.weight_quantizer.scale)
    b = layer.weight_quantizer.bits
    return np.round(np.clip(2 ** (b - 1) * w / s, -2 ** (b - 1), 2 ** (b - 1) - 1))


def qlayers(model):
    return [m for m in model.modules() if isinstance(m, QConv2d)]


def run_and_check_sgd(per_layer, steps=12, m=0.9, eta=0.5, target=0.05, U0=0.2):
    model = tiny_model()
    wrapper = build(model, tr_momentum=m, eta=eta, init_target=target, init_talr=U0,
                    per_layer=per_layer)
    layers = qlayers(model)
    L = len(layers)
    K = np.zeros(L if per_layer else 1)
    U = np.full(L if per_layer else 1, U0)
    prev = None
    bufs = {}
    lr, mom, wd = 0.05, 0.9, 1e-3
    seen_transition = False
    for t in range(steps):
        loss = loss_fn(model, t)
        wrapper.backward(loss)
        before = {id(p): (p.detach().clone(), p.grad.detach().clone())
                  for p in model.parameters() if p.grad is not None}
        now = [ref_levels(q) for q in layers]
        if prev is not None:
            changed = np.array([(a != b).sum() for a, b in zip(now, prev)], dtype=float)
            n = np.array([a.size for a in now], dtype=float)
            k = changed / n if per_layer else np.array([changed.sum() / n.sum()])
            seen_transition |= bool(k.sum() > 0)
            K = m * K + (1 - m) * k                          # Eq. 10
            U = np.maximum(0, U + eta * (target - K))        # Eq. 11
            k_global = float(changed.sum() / n.sum())
        prev = now
        wrapper.step()
        if t > 0:
            assert wrapper.transition_rate == pytest.approx(k_global, abs=1e-12)
        wrapper.zero_grad()
        for p in model.parameters():
            if id(p) not in before:
                continue
            w0, g = before[id(p)]
            d = g + wd * w0
            bufs[id(p)] = d if id(p) not in bufs else mom * bufs[id(p)] + d
            idx = next((i for i, q in enumerate(layers) if q.weight is p), None)
            step_size = lr if idx is None else U[idx if per_layer else 0]   # Eq. 12
            torch.testing.assert_close(p.detach(), w0 - step_size * bufs[id(p)],
                                       rtol=1e-5, atol=1e-7)
        if per_layer:
            assert [r[2] for r in wrapper.layer_values()] == pytest.approx(list(K))
            assert [r[3] for r in wrapper.layer_values()] == pytest.approx(list(U))
        else:
            assert wrapper.running_tr == pytest.approx(K[0], rel=1e-9, abs=1e-15)
            assert wrapper.talr == pytest.approx(U[0], rel=1e-9)
    assert seen_transition, 'test is vacuous: no level ever changed'
    return wrapper


def test_sgd_global_matches_reference():
    run_and_check_sgd(per_layer=False)


def test_sgd_per_layer_matches_reference():
    run_and_check_sgd(per_layer=True)


def test_talr_clamped_at_zero_freezes_quantized_weights():
    model = tiny_model()
    # target 0 and a huge eta: any transition drives U below zero -> clamped at 0
    wrapper = build(model, tr_momentum=0.0, eta=1e6, init_target=0.0, init_talr=0.5)
    for t in range(2):  # step 2 counts the transitions of step 1's update
        wrapper.update_params(loss_fn(model, t))
    assert wrapper.running_tr > 0 and wrapper.talr == 0.0
    w = [q.weight.detach().clone() for q in qlayers(model)]
    bias = qlayers(model)[0].bias.detach().clone()
    wrapper.update_params(loss_fn(model, 2))
    for a, q in zip(w, qlayers(model)):
        assert torch.equal(a, q.weight.detach())
    assert not torch.equal(bias, qlayers(model)[0].bias.detach())  # ordinary LR still


def test_target_follows_param_scheduler_and_lr_schedule_does_not_touch_talr():
    model = tiny_model()
    wrapper = build(model, init_target=0.02, eta=0.0, init_talr=0.1)
    T = 10
    tr_sched = CosineAnnealingParamScheduler(wrapper, param_name='target_tr', T_max=T,
                                             by_epoch=False)
    lr_sched = CosineAnnealingLR(wrapper, T_max=T, by_epoch=False)
    for t in range(T):
        expected_target = 0.02 * (1 + np.cos(np.pi * t / T)) / 2
        expected_lr = 0.05 * (1 + np.cos(np.pi * t / T)) / 2
        assert wrapper.target_tr == pytest.approx(expected_target, rel=1e-6, abs=1e-12)
        assert wrapper.get_lr()['lr'][0] == pytest.approx(expected_lr, rel=1e-6, abs=1e-12)
        wrapper.update_params(loss_fn(model, t))
        assert wrapper.talr == pytest.approx(0.1)     # eta = 0: U never moves
        for g in wrapper.optimizer.param_groups:      # lr keys belong to the scheduler
            assert g['lr'] == pytest.approx(expected_lr, rel=1e-6, abs=1e-12)
        tr_sched.step()
        lr_sched.step()


@pytest.mark.parametrize('opt', ['Adam', 'AdamW'])
def test_adam_family_direction(opt):
    model = tiny_model()
    U0, lr, wd, eps = 0.01, 1e-3, 1e-2, 1e-8
    wrapper = build(model, optimizer=dict(type=opt, lr=lr, weight_decay=wd, eps=eps),
                    eta=0.0, init_talr=U0, init_target=0.01)
    b1, b2 = 0.9, 0.999
    state = {}
    layers = qlayers(model)
    for t in range(1, 5):
        wrapper.backward(loss_fn(model, t))
        for p in model.parameters():
            if p.grad is None:
                continue
            w0, g = p.detach().clone(), p.grad.detach().clone()
            state[id(p)] = state.get(id(p), (torch.zeros_like(g), torch.zeros_like(g)))
            is_q = any(q.weight is p for q in layers)
            step = U0 if is_q else lr
            if opt == 'Adam':
                g = g + wd * w0
                base = w0
            else:
                base = w0 * (1 - step * wd)   # decoupled decay uses the same step size
            m1, v1 = state[id(p)]
            m1 = b1 * m1 + (1 - b1) * g
            v1 = b2 * v1 + (1 - b2) * g * g
            state[id(p)] = (m1, v1)
            direction = (m1 / (1 - b1 ** t)) / ((v1 / (1 - b2 ** t)).sqrt() + eps)
            p._expected = base - step * direction
        wrapper.step()
        wrapper.zero_grad()
        for p in model.parameters():
            if hasattr(p, '_expected'):
                torch.testing.assert_close(p.detach(), p._expected, rtol=1e-5, atol=1e-7)
                del p._expected


def test_state_dict_round_trip_is_bit_identical():
    def fresh():
        model = tiny_model()
        return model, build(model, tr_momentum=0.9, eta=0.5, init_target=0.05,
                            init_talr=0.2, bias_correction=True)

    model, wrapper = fresh()
    for t in range(4):
        wrapper.update_params(loss_fn(model, t))
    saved_model = copy.deepcopy(model.state_dict())
    saved_opt = copy.deepcopy(wrapper.state_dict())
    for t in range(4, 9):
        wrapper.update_params(loss_fn(model, t))
    model2, wrapper2 = fresh()
    model2.load_state_dict(saved_model)
    wrapper2.load_state_dict(saved_opt)
    for t in range(4, 9):
        wrapper2.update_params(loss_fn(model2, t))
    for (n, a), b in zip(model.state_dict().items(), model2.state_dict().values()):
        assert torch.equal(a, b), n
    for prop in ('transition_rate', 'running_tr', 'talr', 'target_tr'):
        assert getattr(wrapper, prop) == getattr(wrapper2, prop)
    assert wrapper.running_tr > 0


def test_accumulative_counts_counts_once_per_update():
    model = tiny_model()
    wrapper = build(model, accumulative_counts=2, init_target=0.05, eta=0.5, init_talr=0.2)
    wrapper.initialize_count_status(model, 0, 100)
    w0 = qlayers(model)[0].weight.detach().clone()
    wrapper.update_params(loss_fn(model, 0))
    assert wrapper.steps == 0 and torch.equal(w0, qlayers(model)[0].weight.detach())
    wrapper.update_params(loss_fn(model, 1))
    assert wrapper.steps == 1 and not torch.equal(w0, qlayers(model)[0].weight.detach())


def test_auto_target_measures_running_tr_under_ordinary_lr():
    model = tiny_model()
    m, n_iters = 0.9, 6
    wrapper = build(model, tr_momentum=m, init_target='auto', auto_target_iters=n_iters,
                    eta='auto', eta_adapt_iters=10)
    K, updates = 0.0, 0
    layers = qlayers(model)
    prev = None
    for t in range(n_iters + 1):
        wrapper.backward(loss_fn(model, t))
        now = [ref_levels(q) for q in layers]
        if prev is not None:
            k = sum((a != b).sum() for a, b in zip(now, prev)) / sum(a.size for a in now)
            K = m * K + (1 - m) * k
            updates += 1
        prev = now
        if t < n_iters:
            assert wrapper.talr == pytest.approx(0.05)  # ordinary LR while measuring
        wrapper.step()
        wrapper.zero_grad()
    measured = K / (1 - m ** updates)
    assert measured > 0
    assert wrapper.target_tr == pytest.approx(measured, rel=1e-9)
    assert wrapper.eta == pytest.approx(0.05 / (measured * 10), rel=1e-9)


def test_errors_are_clear():
    with pytest.raises(ValueError, match='tr_momentum'):
        build(tiny_model(), tr_momentum=1.0)
    with pytest.raises(ValueError, match='eta'):
        build(tiny_model(), eta=-1.0)
    with pytest.raises(ValueError, match='init_target'):
        build(tiny_model(), init_target=-0.1)
    with pytest.raises(ValueError, match='frozen weight scales'):
        build(tiny_model(learn_weight_scale=True))
    with pytest.raises(ValueError, match='no quantized layer'):
        build(nn.Sequential(nn.Conv2d(3, 3, 1)))
    wrapper = build(tiny_model())
    state = wrapper.state_dict()
    state.pop('trs')
    with pytest.raises(RuntimeError, match='load_from'):
        wrapper.load_state_dict(state)


def test_running_tr_tracks_a_scheduled_target():
    """The controller of Eq. 11 makes K follow R: over the second half of a run with a
    linearly decaying target, mean |K - R| / R stays small and K falls with R."""
    from mmengine.optim.scheduler import LinearParamScheduler
    model = tiny_model(seed=1)
    steps = 400
    wrapper = build(model, optimizer=dict(type='SGD', lr=0.01, momentum=0.9),
                    tr_momentum=0.9, init_talr=0.01, eta=2.0, init_target=0.02,
                    bias_correction=True)
    sched = LinearParamScheduler(wrapper, param_name='target_tr', start_factor=1.0,
                                 end_factor=0.25, begin=0, end=steps, by_epoch=False)
    errs, K = [], []
    for t in range(steps):
        wrapper.update_params(loss_fn(model, t))
        sched.step()
        K.append(wrapper.running_tr)
        if t >= steps // 2:
            errs.append(abs(wrapper.running_tr - wrapper.target_tr) / wrapper.target_tr)
    assert np.mean(errs) < 0.25, np.mean(errs)
    assert np.mean(K[-50:]) < 0.8 * np.mean(K[150:200])


@pytest.mark.parametrize('w_bits', [1, 3, 4])
def test_transition_counts_fused_and_aten_match_numpy(w_bits, monkeypatch):
    """Eq. 5 counts of the fused one-pass kernel and of the ATen path (GPUs) against
    numpy on weights large enough to be split across threads."""
    from mmtrs.trs import TransitionCounter
    from mmtrs.quant import quantizer as qmod
    assert qmod.fused_kernel_available(), 'fused kernel not built: run `pip install -e .`'
    torch.manual_seed(w_bits)
    layers = [QConv2d(64, 128, 3, w_bits=w_bits, a_bits=None, name=f'c{i}') for i in range(2)]
    for q in layers:
        q.weight_quantizer.scale.data.fill_(float(q.weight.detach().std() * 3))
        q.weight_quantizer.initialized.fill_(1)

    def np_levels(q):
        gamma = 2 ** (w_bits - 1) if w_bits > 1 else 1
        v = gamma * q.weight.detach().double().numpy() / float(q.weight_quantizer.scale)
        if w_bits == 1:
            return np.where(np.clip(v, -1, 1) >= 0, 1, -1)
        return np.round(np.clip(v, -2 ** (w_bits - 1), 2 ** (w_bits - 1) - 1))

    named = [(f'c{i}', q) for i, q in enumerate(layers)]
    fused, aten = TransitionCounter(named), TransitionCounter(named)
    assert fused.count() is None
    with monkeypatch.context() as mp:
        mp.setattr(qmod, '_fused_quantize', None)
        assert aten.count() is None
    for step in range(3):
        before = [np_levels(q) for q in layers]
        with torch.no_grad():
            for q in layers:
                q.weight.add_(torch.randn_like(q.weight) * q.weight.std() * 0.1 * (step + 1))
        expected = [float((np_levels(q) != b).sum()) for q, b in zip(layers, before)]
        got_fused = fused.count().tolist()
        with monkeypatch.context() as mp:
            mp.setattr(qmod, '_fused_quantize', None)
            got_aten = aten.count().tolist()
        assert got_fused == got_aten
        assert min(expected) > 100
        # float32 vs float64 may disagree about a weight sitting on a .5 tie
        assert got_fused == pytest.approx(expected, abs=2)
        assert all(torch.equal(a, b) for a, b in zip(fused.prev, aten.prev))


@pytest.mark.parametrize('w_bits', [1, 2, 4])
def test_forward_kernel_counts_transitions_as_numpy(w_bits):
    """The quantizer forward with `levels` (Eq. 5 counted in the pass that quantizes the
    weights): the same output as without, the count and the new levels as numpy's, on a
    tensor large enough to be split across threads."""
    from mmtrs.quant import quantizer as qmod
    assert qmod.fused_kernel_available(), 'fused kernel not built: run `pip install -e .`'
    q = qmod.Quantizer(w_bits, 'weight')
    torch.manual_seed(w_bits)
    w0 = torch.randn(300_000)
    q.scale.data.fill_(float(w0.std() * 3))
    q.initialized.fill_(1)
    alpha, beta, gamma = q.qrange
    use_sign = w_bits == 1

    def np_levels(w):
        v = gamma * w.double().numpy() / float(q.scale.detach())
        if use_sign:
            return np.where(np.clip(v, alpha, beta) >= 0, 1, -1)
        return np.round(np.clip(v, alpha, beta))

    levels = torch.from_numpy(np_levels(w0).astype(np.int8))
    w1 = w0 + torch.randn(300_000) * w0.std() * 0.05
    args = (w1, q.scale, [], alpha, beta, gamma, use_sign, 1.0, False, [])
    plain, _, none = qmod._fused_quantize.quantize(*args, None)
    out, _, changed = qmod._fused_quantize.quantize(*args, levels)
    expected = np_levels(w1)
    assert none == -1 and torch.equal(out, plain)
    assert changed > 1000
    # float32 vs float64 may disagree about a weight sitting on a .5 tie
    assert changed == pytest.approx(float((expected != np_levels(w0)).sum()), abs=2)
    assert (levels.numpy() != expected).sum() <= 2


def test_transitions_counted_in_forward_match_a_separate_pass(monkeypatch):
    """TRSOptimWrapper counts Eq. 5 in the weight quantizers' forward pass. With gradient
    accumulation, an evaluation forward and a repeated training forward between steps,
    and a resume from a state dict, training is bit-identical to counting in a pass of
    its own (TransitionCounter(in_forward=False)), and that pass is never needed."""
    from mmtrs.quant import quantizer as qmod
    from mmtrs.trs import TransitionCounter
    runs = []
    for in_forward in (True, False):
        model = tiny_model()
        wrapper = build(model, accumulative_counts=2, tr_momentum=0.9, eta=0.5,
                        init_target=0.05, init_talr=0.2)
        wrapper.initialize_count_status(model, 0, 100)
        named = [(n, m) for n, m in model.named_modules() if isinstance(m, QConv2d)]
        wrapper._counter = TransitionCounter(named, in_forward=in_forward)
        rates = []
        for t in range(12):
            if t == 6:  # resume mid-run into a fresh model and wrapper
                state, opt_state = copy.deepcopy(model.state_dict()), wrapper.state_dict()
                model = tiny_model(seed=1)
                model.load_state_dict(state)
                wrapper = build(model, accumulative_counts=2, tr_momentum=0.9, eta=0.5,
                                init_target=0.05, init_talr=0.2)
                wrapper.initialize_count_status(model, 0, 100)
                named = [(n, m) for n, m in model.named_modules() if isinstance(m, QConv2d)]
                wrapper._counter = TransitionCounter(named, in_forward=in_forward)
                wrapper.load_state_dict(opt_state)
            if t % 3 == 1:
                with torch.no_grad():
                    model(batch(100 + t)[0])          # evaluation: not counted
            if t % 4 == 2:
                loss_fn(model, 200 + t)                # a training forward, dropped
            if in_forward and t >= 2:
                # from the second update on the forward pass has counted every layer
                monkeypatch.setattr(qmod.Quantizer, 'update_levels', None)
            wrapper.update_params(loss_fn(model, t))
            if wrapper.steps and t % 2:
                rates.append((wrapper.transition_rate, wrapper.running_tr, wrapper.talr))
        monkeypatch.undo()
        runs.append((rates, model.state_dict()))
    (r_fwd, sd_fwd), (r_sep, sd_sep) = runs
    assert r_fwd == r_sep
    assert max(r[0] for r in r_fwd) > 0, 'test is vacuous: no level ever changed'
    for k, v in sd_fwd.items():
        assert torch.equal(v, sd_sep[k]), k
