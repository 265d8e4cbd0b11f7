"""TALR replay: a plain optimizer whose quantized weights follow a recorded per-step LR
(mmtrs/trs/replay.py), checked by hand on one SGD step and against the TR-scheduled run
it was recorded from (same model, data and order: the replay must be that run, update
for update)."""
import json

import pytest
import torch
from mmengine.optim import build_optim_wrapper

from mmtrs.trs import read_trajectory
from test_trs_optim_wrapper import build, loss_fn, qlayers, tiny_model

SGD = dict(type='SGD', lr=0.05, momentum=0.9, weight_decay=1e-3)


def replay(model, trajectory, optimizer=SGD):
    return build_optim_wrapper(model, dict(
        type='TALRReplayOptimWrapper', constructor='TRSOptimWrapperConstructor',
        talr_trajectory=trajectory, optimizer=dict(optimizer)))


def test_first_step_by_hand():
    # SGD's first step: buffer = g + wd * w, w <- w - lr * buffer, with lr = 0.3 for the
    # quantized weights (the trajectory) and 0.05 for everything else
    model = tiny_model()
    wrapper = replay(model, [0.3, 0.1])
    wrapper.backward(loss_fn(model, 0))
    before = {n: (p.detach().clone(), p.grad.detach().clone())
              for n, p in model.named_parameters() if p.grad is not None}
    wrapper.step()
    quantized = {id(q.weight) for q in qlayers(model)}
    checked = 0
    for n, p in model.named_parameters():
        if n not in before:
            continue
        w0, g = before[n]
        lr = 0.3 if id(p) in quantized else 0.05
        torch.testing.assert_close(p.detach(), w0 - lr * (g + 1e-3 * w0), rtol=1e-6,
                                   atol=1e-8)
        checked += 1
    assert checked > len(quantized)  # biases / activation scales checked too
    # the groups keep the scheduled LR outside the step
    assert all(g['lr'] == 0.05 for g in wrapper.optimizer.param_groups)


def test_replaying_a_tr_scheduled_run_reproduces_it():
    steps = 10
    sgdt_model = tiny_model()
    sgdt = build(sgdt_model, tr_momentum=0.5, init_target='auto', auto_target_iters=3,
                 eta='auto', eta_adapt_iters=5, auto_target_scale=3.0)
    talr = []
    for t in range(steps):
        sgdt.backward(loss_fn(sgdt_model, t))
        sgdt.step()
        sgdt.zero_grad()
        talr.append(sgdt.talr)
    assert len(set(talr)) > 2, 'the TALR did not move: the test would prove nothing'
    model = tiny_model()
    wrapper = replay(model, talr)
    for t in range(steps):
        wrapper.backward(loss_fn(model, t))
        wrapper.step()
        wrapper.zero_grad()
    for a, b in zip(sgdt_model.parameters(), model.parameters()):
        assert torch.equal(a, b)
    # and a different schedule gives a different model
    other = tiny_model()
    w = replay(other, [v * 1.5 for v in talr])
    for t in range(steps):
        w.backward(loss_fn(other, t))
        w.step()
        w.zero_grad()
    assert not all(torch.equal(a, b) for a, b in zip(model.parameters(), other.parameters()))


def test_resume_continues_the_trajectory():
    traj = [0.1, 0.2, 0.3, 0.4]
    a_model = tiny_model()
    a = replay(a_model, traj)
    for t in range(4):
        a.backward(loss_fn(a_model, t))
        a.step()
        a.zero_grad()
    b_model = tiny_model()
    b = replay(b_model, traj)
    for t in range(2):
        b.backward(loss_fn(b_model, t))
        b.step()
        b.zero_grad()
    state = b.state_dict()
    c_model = tiny_model()
    c_model.load_state_dict(b_model.state_dict())
    c = replay(c_model, traj)
    c.load_state_dict(state)
    assert c.steps == 2
    for t in range(2, 4):
        c.backward(loss_fn(c_model, t))
        c.step()
        c.zero_grad()
    for p, q in zip(a_model.parameters(), c_model.parameters()):
        assert torch.equal(p, q)


def test_bad_trajectories_name_the_key(tmp_path):
    with pytest.raises(ValueError, match='optim_wrapper.talr_trajectory.*no such file'):
        replay(tiny_model(), str(tmp_path / 'missing.json'))
    for bad in ([], [0.1, -1.0], [0.1, float('nan')], 7, [True]):
        with pytest.raises(ValueError, match='optim_wrapper.talr_trajectory'):
            read_trajectory(bad)
    f = tmp_path / 'talr_trajectory.json'
    f.write_text(json.dumps(dict(talr=[0.1, 0.2], lr=[0.05, 0.05])))
    assert read_trajectory(str(f)) == [0.1, 0.2]
    model = tiny_model()
    w = replay(model, str(f))
    for t in range(2):
        w.backward(loss_fn(model, t))
        w.step()
        w.zero_grad()
    w.backward(loss_fn(model, 2))
    with pytest.raises(RuntimeError, match='holds 2 steps'):
        w.step()
