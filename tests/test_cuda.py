"""The ATen path on a CUDA device against float64 references and against the CPU.

Skipped without a GPU. The fused quantizer kernel is CPU-only; on any other device the
quantizers, transition counting and TR scheduling run as plain ATen ops, and these tests
check that this path computes what the CPU path computes (levels and counts exactly;
sums to float accuracy) with every tensor staying on the device.
"""
import copy
import math
import os.path as osp
import sys

import pytest
import torch
from torch import nn

import mmtrs  # noqa: F401
from conftest import ROOT
from mmtrs.quant import QConv2d
from test_quantizer import assert_matches_float64, make_q

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA device')
CUDA = torch.device('cuda')


def on_gpu(t):
    return t.device.type == CUDA.type


@pytest.fixture(autouse=True)
def true_float32():
    """TF32 would round conv and matmul inputs to 10 mantissa bits: compare float32."""
    old = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = old


@pytest.mark.parametrize('bits,kind,signed', [
    (4, 'weight', None), (3, 'act', True), (4, 'act', False), (2, 'weight', None),
    (1, 'weight', None), (2, 'act', False)])
def test_quantizer_on_cuda_matches_float64_reference(bits, kind, signed):
    """Eq. 13 levels, the STE input gradient and the LSQ scale gradient on the GPU,
    against a float64 evaluation on the CPU."""
    torch.manual_seed(bits)
    q = make_q(bits, kind, signed, s=0.9).to(CUDA)
    x = torch.randn(4, 16, 48, 49) * 0.7
    if kind == 'act' and not signed:
        x = x.relu()
    up = torch.randn(x.shape)
    xc = x.to(CUDA).requires_grad_(True)
    out = q(xc)
    (out * up.to(CUDA)).sum().backward()
    assert on_gpu(out) and on_gpu(xc.grad) and on_gpu(q.scale.grad)
    assert_matches_float64(q, x, up, out, xc.grad, 0.9)


def test_qconv_step_on_cuda_matches_cpu():
    """A QConv2d's first batch (scale init), output and every gradient on the GPU equal
    the CPU's to float32 accuracy."""
    torch.manual_seed(3)
    cpu = QConv2d(8, 16, 3, padding=1, w_bits=4, a_bits=4, a_signed=False, name='c')
    gpu = copy.deepcopy(cpu).to(CUDA)
    x = torch.relu(torch.randn(2, 8, 20, 20))
    up = torch.randn(2, 16, 20, 20)
    outs = []
    for conv, dev in ((cpu, 'cpu'), (gpu, CUDA)):
        conv.train()
        conv(x.to(dev))                              # first batch: sets both scales
        xi = x.to(dev).detach().requires_grad_(True)  # a leaf on both devices
        y = conv(xi)
        (y * up.to(dev)).sum().backward()
        outs.append([y.detach(), xi.grad, conv.weight.grad,
                     conv.weight_quantizer.scale.grad, conv.act_quantizer.scale.grad,
                     conv.weight_quantizer.scale.detach(), conv.act_quantizer.scale.detach()])
    for a, b in zip(*outs):
        if a is None:  # weight scales are frozen by default: no gradient on either
            assert b is None
            continue
        assert on_gpu(b)
        assert torch.allclose(a, b.cpu(), rtol=1e-4, atol=1e-5), (a - b.cpu()).abs().max()


def test_transition_counts_on_cuda_equal_cpu_counts():
    """Eq. 5 counts on the GPU equal those on the CPU for the same weight updates; the
    previous levels stay on the device and the counts come to the host in one transfer
    per step (the controller's state is float64 on the host)."""
    from mmtrs.trs import TransitionCounter
    torch.manual_seed(0)
    layers = [QConv2d(32, 64, 3, w_bits=3, a_bits=None, name=f'c{i}') for i in range(2)]
    for q in layers:
        q.weight_quantizer.scale.data.fill_(float(q.weight.detach().std() * 3))
        q.weight_quantizer.initialized.fill_(1)
    gpu_layers = [copy.deepcopy(q).to(CUDA) for q in layers]
    cpu_c = TransitionCounter([(f'c{i}', q) for i, q in enumerate(layers)])
    gpu_c = TransitionCounter([(f'c{i}', q) for i, q in enumerate(gpu_layers)])
    assert cpu_c.count() is None and gpu_c.count() is None
    for step in range(3):
        with torch.no_grad():
            for q, g in zip(layers, gpu_layers):
                d = torch.randn_like(q.weight) * q.weight.std() * 0.1 * (step + 1)
                q.weight.add_(d)
                g.weight.add_(d.to(CUDA))
        got = gpu_c.count()
        expected = cpu_c.count()
        assert expected.min() > 50
        assert torch.equal(got, expected)
        assert all(on_gpu(p) for p in gpu_c.prev)


def tiny_model():
    torch.manual_seed(0)
    kw = dict(w_bits=3, a_bits=4, learn_weight_scale=False)
    return nn.Sequential(
        QConv2d(3, 8, 3, padding=1, name='c0', **kw), nn.ReLU(),
        QConv2d(8, 8, 3, padding=1, name='c1', **kw), nn.ReLU(),
        QConv2d(8, 4, 1, name='c2', **kw)).double()


def test_trs_training_on_cuda_follows_the_cpu_run():
    """TR scheduling (Eqs. 5, 10-12, R^0 measured under the LR) for 30 steps in float64
    on the GPU and on the CPU: the same transitions, the same K and U every step."""
    from mmengine.optim import build_optim_wrapper

    def run(device):
        model = tiny_model().to(device)
        wrapper = build_optim_wrapper(model, dict(
            type='TRSOptimWrapper', constructor='TRSOptimWrapperConstructor',
            optimizer=dict(type='SGD', lr=0.05, momentum=0.9), tr_momentum=0.9, eta=0.5,
            init_target='auto', auto_target_iters=5, auto_target_scale=3.0))
        hist = []
        for t in range(30):
            g = torch.Generator().manual_seed(t)
            x = torch.randn(4, 3, 8, 8, generator=g, dtype=torch.float64)
            y = torch.randn(4, 4, 8, 8, generator=g, dtype=torch.float64)
            wrapper.update_params(((model(x.to(device)) - y.to(device)) ** 2).mean())
            hist.append((wrapper.transition_rate, wrapper.running_tr, wrapper.talr))
        return hist, model

    (cpu, _), (gpu, model) = run('cpu'), run(CUDA)
    assert all(on_gpu(p) for p in model.parameters())
    assert any(h[0] for h in cpu[6:]), 'no transitions: the test would show nothing'
    for (k0, K0, U0), (k1, K1, U1) in zip(cpu, gpu):
        assert k0 == k1
        assert K0 == pytest.approx(K1, rel=1e-9, abs=1e-12)
        assert U0 == pytest.approx(U1, rel=1e-9, abs=1e-12)


def _mmcv_cuda_ops():
    try:
        from mmcv.ops import sigmoid_focal_loss
        sigmoid_focal_loss(torch.zeros(2, 3, device=CUDA), torch.zeros(2, dtype=torch.long,
                                                                        device=CUDA))
        return True
    except Exception:  # a CPU-only mmcv build: no CUDA focal loss / NMS
        return False


@pytest.mark.parametrize('cfg', ['retinanet_r18_w4a4_trs_demo.py',
                                 'retinanet_mbv2_w3a3_trs_demo.py'])
def test_detector_trains_on_cuda_like_on_cpu(cfg):
    """The quantized demo detectors (TR scheduling) take training steps on the GPU: the
    first step's losses equal the CPU's to float32 accuracy, and 4 more stay finite."""
    if not _mmcv_cuda_ops():
        pytest.skip('mmcv was built without its CUDA ops (focal loss)')
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    from mmengine.config import Config
    from mmengine.optim import build_optim_wrapper
    sys.path.insert(0, osp.join(ROOT, 'benchmarks'))
    from variants import synthetic_batch
    register_all_modules()
    c = Config.fromfile(osp.join(ROOT, 'configs/demo', cfg))
    torch.manual_seed(0)
    base = MODELS.build(c.model)
    base.init_weights()
    data = synthetic_batch(2, 128)
    losses = []
    for dev in ('cpu', CUDA):
        model = copy.deepcopy(base).to(dev)
        model.train()
        wrapper = build_optim_wrapper(model, copy.deepcopy(c.optim_wrapper))
        log = model.train_step(copy.copy(data), wrapper)
        losses.append({k: float(v) for k, v in log.items()})
    for k in losses[0]:
        assert losses[1][k] == pytest.approx(losses[0][k], rel=1e-3, abs=1e-5), k
    for _ in range(4):
        log = model.train_step(copy.copy(data), wrapper)
        assert all(math.isfinite(float(v)) for v in log.values())
    assert all(on_gpu(p) for p in model.parameters())
    assert wrapper.steps == 5
