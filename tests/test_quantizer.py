"""Quantizer (Eq. 13) against hand-computed levels and closed-form gradients."""
import math

import numpy as np
import pytest
import torch

from mmtrs.quant import NegativeInputError, Quantizer, check_bits, quant_range
from mmtrs.quant import quantizer as quantizer_module

PATHS = ['fused', 'aten']


@pytest.fixture(params=PATHS)
def path(request, monkeypatch):
    """Run a test on the fused CPU kernel and on the ATen-op path (the one GPUs use)."""
    if request.param == 'fused':
        if not quantizer_module.fused_kernel_available():
            pytest.fail('the fused quantizer kernel is not built: run `pip install -e .`')
    else:
        monkeypatch.setattr(quantizer_module, '_fused_quantize', None)
    return request.param


def make_q(bits, kind='weight', signed=None, s=1.0, learn=True):
    q = Quantizer(bits, kind, signed=signed, learn_scale=learn, check_sign=True, name='q')
    q.scale.data.fill_(s)
    q.initialized.fill_(1)
    if kind == 'act' and signed is not None and signed != 'auto':
        q.signed_flag.fill_(int(signed))
    return q


@pytest.mark.parametrize('bits,signed,expected', [
    (4, True, (-8, 7, 8)), (3, True, (-4, 3, 4)), (2, True, (-2, 1, 2)),
    (4, False, (0, 15, 16)), (3, False, (0, 7, 8)), (2, False, (0, 3, 4)),
    (8, True, (-128, 127, 128)), (1, True, (-1, 1, 1)), (1, False, (0, 1, 1))])
def test_ranges_match_paper_table(bits, signed, expected):
    assert quant_range(bits, signed) == expected


# (bits, kind, signed, s, inputs, hand-computed levels)
CASES = [
    # 4-bit weight: gamma x / s = 8x; clip to [-8, 7]
    (4, 'weight', None, 1.0, [-2, -1, -0.56, -0.06, 0.0, 0.06, 0.07, 0.5, 0.87, 0.95],
     [-8, -8, -4, 0, 0, 0, 1, 4, 7, 7]),
    # 3-bit weight, s = 2: 4x/2 = 2x; clip to [-4, 3]
    (3, 'weight', None, 2.0, [-3, -1.1, 0.3, 0.9, 1.2, 5], [-4, -2, 1, 2, 2, 3]),
    # 2-bit weight: 2x; clip to [-2, 1]
    (2, 'weight', None, 1.0, [-1.5, -0.3, 0.2, 0.3, 0.9], [-2, -1, 0, 1, 1]),
    # 4-bit unsigned activation: 16x; clip to [0, 15]
    (4, 'act', False, 1.0, [0, 0.01, 0.1, 0.5, 0.97, 2], [0, 0, 2, 8, 15, 15]),
    # 3-bit signed activation, s = 0.5: 4x/0.5 = 8x; clip to [-4, 3]
    (3, 'act', True, 0.5, [-1, -0.2, 0.1, 0.3, 0.6], [-4, -2, 1, 2, 3]),
    # binary weight: sign(clip(x/s, -1, 1)), sign(0) = +1
    (1, 'weight', None, 1.0, [-0.3, 0.0, 0.2, 5], [-1, 1, 1, 1]),
    # binary activation: round(clip(x/s, 0, 1))
    (1, 'act', False, 1.0, [0, 0.4, 0.6, 3], [0, 0, 1, 1]),
]


@pytest.mark.parametrize('bits,kind,signed,s,x,levels', CASES)
def test_levels_and_output_by_hand(bits, kind, signed, s, x, levels, path):
    q = make_q(bits, kind, signed, s)
    x = torch.tensor(x)
    lv = torch.tensor(levels, dtype=torch.float32)
    assert torch.equal(q.discretize(x), lv)
    gamma = quant_range(bits, q.signed)[2]
    assert torch.allclose(q(x), lv / gamma)  # x_q = x_d / gamma


@pytest.mark.parametrize('bits,kind,signed,s,x,levels', CASES)
def test_ste_and_lsq_gradients_closed_form(bits, kind, signed, s, x, levels, path):
    q = make_q(bits, kind, signed, s)
    alpha, beta, gamma = quant_range(bits, q.signed)
    x = torch.tensor(x, requires_grad=True)
    c = torch.linspace(0.5, 2.0, x.numel())  # arbitrary upstream gradient
    (q(x) * c).sum().backward()
    v = gamma * x.detach() / s
    inside = ((v >= alpha) & (v <= beta)).float()
    # STE: d x_q / d x = 1/s inside the clipping range, 0 outside
    assert torch.allclose(x.grad, c * inside / s)
    # LSQ: d x_q / d s = -x / s^2 inside, 0 outside, times 1/sqrt(N * beta)
    n = x.numel() if kind == 'weight' else x[0].numel()
    expected = (c * inside * (-x.detach() / s ** 2)).sum() / math.sqrt(n * beta)
    assert torch.allclose(q.scale.grad, expected)


def test_denormalized_output_gives_lsq_scale_gradient():
    """With h = s (Eq. 3), d(s*x_q)/ds is LSQ's (round(v) - v)/gamma inside the range
    and alpha/gamma or beta/gamma where clipped, all times LSQ's gradient scale."""
    q = make_q(4, 'weight', s=1.0)
    x = torch.tensor([-2.0, -0.3, 0.11, 0.52, 3.0])
    (q(x) * q.denorm_scale()).sum().backward()
    v = 8 * x
    inner = torch.where(v < -8, torch.tensor(-8.0), torch.where(
        v > 7, torch.tensor(7.0), v.round() - v)) / 8
    assert torch.allclose(q.scale.grad, inner.sum() / math.sqrt(5 * 7))


def test_frozen_scale_gets_no_gradient():
    q = make_q(4, 'weight', learn=False)
    x = torch.randn(10, requires_grad=True)
    q(x).sum().backward()
    assert q.scale.grad is None and x.grad is not None


def test_scale_init_from_first_batch():
    torch.manual_seed(0)
    w = torch.randn(1000) * 0.2
    qw = Quantizer(4, 'weight')
    qw.train()
    qw(w)
    assert math.isclose(float(qw.scale), 3 * float(w.std()), rel_tol=1e-5)
    a = torch.relu(torch.randn(4, 1000))
    qa = Quantizer(4, 'act', signed=False)
    qa.train()
    qa(a)
    assert math.isclose(float(qa.scale), 3 * float(a.std()) / math.sqrt(1 - 2 / math.pi),
                        rel_tol=1e-5)
    assert qa.is_initialized and not qa.signed


def test_auto_sign_decided_on_first_batch_and_kept(path):
    qa = Quantizer(4, 'act', signed='auto')
    qa.train()
    qa(torch.randn(2, 100))
    assert qa.signed and quant_range(4, True) == qa.qrange
    qb = Quantizer(4, 'act', signed='auto')
    qb.train()
    qb(torch.rand(2, 100))
    assert not qb.signed
    with pytest.raises(NegativeInputError, match='Unsigned activation quantizer'):
        qb(-torch.rand(2, 100))


def test_unsigned_quantizer_rejects_negative_input_at_init():
    qa = Quantizer(4, 'act', signed=False, name='neck.fpn_convs.0.conv.act_quantizer')
    qa.train()
    with pytest.raises(NegativeInputError, match='neck.fpn_convs.0.conv'):
        qa(torch.randn(2, 100))


@pytest.mark.parametrize('bits,kind,signed', [
    (4, 'weight', None), (3, 'act', True), (4, 'act', False), (1, 'weight', None),
    (2, 'act', False)])
def test_fused_kernel_matches_float64_reference(bits, kind, signed):
    """The fused kernel on tensors large enough to be split across threads, against an
    independent float64 evaluation of Eq. 13 and its gradients (levels must agree
    exactly; the sums to float32 accuracy)."""
    torch.manual_seed(bits)
    q = make_q(bits, kind, signed, s=0.9)
    x = torch.randn(4, 16, 96, 97) * 0.7
    if kind == 'act' and not signed:
        x = x.relu()
    x.requires_grad_(True)
    up = torch.randn(x.shape)
    out = q(x)
    (out * up).sum().backward()
    assert_matches_float64(q, x.detach(), up, out, x.grad, 0.9)


def assert_matches_float64(q, x, up, out, x_grad, s):
    """A quantizer's output, input gradient and LSQ scale gradient for input x and
    upstream gradient up (any device) against an independent float64 evaluation of
    Eq. 13 and its gradients at scale s: levels exactly (except on .5 ties), the sums
    to float32 accuracy."""
    bits = q.bits
    alpha, beta, gamma = quant_range(bits, q.signed)
    x64, up64 = x.cpu().double(), up.cpu().double()
    v = x64 * gamma / float(torch.tensor(s, dtype=torch.float32))
    clipped = v.clamp(alpha, beta)
    levels = torch.where(clipped >= 0, 1.0, -1.0) if bits == 1 and q.signed else clipped.round()
    inside = (v >= alpha) & (v <= beta)
    # levels equal except where float32 and float64 disagree about a .5 tie
    ties = ((v - v.floor()) - 0.5).abs() < 1e-5
    assert torch.equal((out.detach().cpu().double() * gamma)[~ties], levels[~ties])
    grad = x_grad.cpu().double()
    assert torch.equal(grad != 0, inside & (up64 != 0))
    assert torch.allclose(grad, up64 * inside / s, rtol=1e-6)
    n = x.numel() if q.kind == 'weight' else x[0].numel()
    gs = -(up64 * inside * x64).sum() / s ** 2 / math.sqrt(n * beta)
    assert math.isclose(float(q.scale.grad), float(gs), rel_tol=1e-4)


def test_fused_and_aten_paths_agree_bit_for_bit(monkeypatch):
    """Forward outputs of both paths are equal bit for bit (same float32 operations);
    the gradients too, but for the order of the scale gradient's sum."""
    torch.manual_seed(0)
    x0 = torch.randn(2, 8, 64, 65) * 0.5
    results = []
    for use_fused in (True, False):
        if not use_fused:
            monkeypatch.setattr(quantizer_module, '_fused_quantize', None)
        q = make_q(3, 'act', True, s=0.37)
        x = x0.clone().requires_grad_(True)
        out = q(x)
        (out * torch.linspace(-1, 1, out.numel()).reshape(out.shape)).sum().backward()
        results.append((out.detach(), x.grad, q.scale.grad))
    (o1, g1, s1), (o2, g2, s2) = results
    assert torch.equal(o1, o2) and torch.equal(g1, g2)
    # the scale gradient's float32 sums differ in order: both within 2e-5 of the float64
    # sum (ATen's torch.dot is 1.2e-5 from it here, the fused kernel 3e-6)
    up = torch.linspace(-1, 1, x0.numel(), dtype=torch.float64).reshape(x0.shape)
    gs = -(up.float().double() * (g1 != 0) * x0.double()).sum() / 0.37 ** 2 / \
        math.sqrt(x0[0].numel() * 3)
    for s in (s1, s2):
        assert math.isclose(float(s), float(gs), rel_tol=2e-5), (float(s), float(gs))


@pytest.mark.parametrize('kind,signed', [('weight', None), ('act', False)])
def test_ste_mask_at_the_clip_edges_same_on_both_paths(monkeypatch, kind, signed):
    """The fused backward recomputes the STE mask from x (none is stored): at the clip
    edges (v exactly alpha or beta, one float32 step beyond), at -0.0 and for NaN it
    must give the gradient the ATen path gives from its stored mask, bit for bit."""
    s = 0.75
    q0 = make_q(4, kind, signed, s=s)
    alpha, beta, gamma = quant_range(4, q0.signed)
    # gamma / s as both paths compute it: the float32 reciprocal, then the product
    c = float(np.float32(1) / np.float32(s) * np.float32(gamma))
    edges = torch.tensor([alpha, beta], dtype=torch.float32) / c
    near = torch.cat([edges, torch.nextafter(edges, edges + 1), torch.nextafter(edges, edges - 1)])
    x0 = torch.cat([near, torch.tensor([0.0, -0.0, float('nan'), 0.3, -0.3])])
    if kind == 'act':
        x0 = x0[~(x0 < 0)]                       # an unsigned quantizer refuses negatives
    assert ((x0 * c == beta) | (x0 * c == alpha)).any()   # the edge itself is hit
    x0 = x0.repeat(5000)                          # > one thread's grain
    grads = []
    for use_fused in (True, False):
        if not use_fused:
            monkeypatch.setattr(quantizer_module, '_fused_quantize', None)
        q = make_q(4, kind, signed, s=s)
        x = x0.clone().requires_grad_(True)
        q(x).backward(torch.ones_like(x0))
        grads.append(x.grad)
    torch.testing.assert_close(grads[0], grads[1], rtol=0, atol=0, equal_nan=True)
    assert (grads[0] == 0).any() and (grads[0] != 0).any()


def test_negative_input_caught_in_the_quantizing_pass(path):
    q = make_q(4, 'act', False, s=1.0)
    q.name = 'bbox_head.cls_convs.0.conv.act_quantizer'
    x = torch.rand(2, 3, 40, 40)
    x[1, 2, 7, 9] = -0.25
    with pytest.raises(NegativeInputError, match=r'cls_convs.0.conv.*min -0.25'):
        q(x)


@pytest.mark.parametrize('bits', [0, 9, 4.0, '4', True, None, -1])
def test_bad_bit_widths(bits):
    with pytest.raises(ValueError, match='bit-width'):
        check_bits(bits, 'quant_cfg.w_bits')


def test_lsq_scaled_identity_is_bit_identical_to_the_detach_expression():
    """denorm_scale's one-node form gives the value of (s - s*g).detach() + s*g bit for
    bit (that value is not always s) and the gradient g."""
    torch.manual_seed(0)
    for s_val, g in zip(torch.rand(300) * 3 + 1e-3, torch.rand(300).tolist()):
        s = s_val.clone().requires_grad_(True)
        ref = (s - s * g).detach() + s * g
        got = quantizer_module._LSQScaledIdentity.apply(s, g)
        assert torch.equal(got.detach(), ref.detach()), (float(s_val), g)
        got.backward()
        assert float(s.grad) == pytest.approx(g, rel=1e-7)


@pytest.mark.parametrize('bits,learn', [(4, True), (8, True), (4, False), (1, True)])
def test_output_scale_equals_aten_product_and_its_gradients(path, bits, learn):
    """x_q * f done inside the quantizer (out_scale) equals ATen's `x_q * f` bit for bit;
    the gradients are those of the product, against float64: d/dx = grad * f / s inside
    the range, d/df = sum(grad * x_q), d/ds = LSQ's on grad * f."""
    torch.manual_seed(bits)
    s0, f0 = 0.61, 0.0437
    q = make_q(bits, 'weight', s=s0, learn=learn)
    x = (torch.randn(64, 32, 3, 3) * 0.4).requires_grad_(True)   # > one thread's grain
    f = torch.tensor(f0, requires_grad=True)
    up = torch.randn(x.shape)
    out = q(x, out_scale=lambda: [(f, None)])
    (out * up).sum().backward()
    alpha, beta, gamma = quant_range(bits, True)
    with torch.no_grad():
        ref_q = q(x.detach())                                 # x_q alone, then ATen's product
        assert torch.equal(out.detach(), ref_q * f.detach())
    x64, up64, sf = x.detach().double(), up.double(), float(torch.tensor(s0))
    v = x64 * (gamma / sf)
    inside = (v >= alpha) & (v <= beta)
    lv = torch.where(v.clamp(alpha, beta) >= 0, 1.0, -1.0) if bits == 1 else \
        v.clamp(alpha, beta).round()
    ties = ((v - v.floor()) - 0.5).abs() < 1e-5
    assert not ties.any()
    ff = float(torch.tensor(f0))
    assert torch.allclose(x.grad.double(), up64 * ff * inside / sf, rtol=1e-6, atol=1e-12)
    assert float(f.grad) == pytest.approx(float((up64 * lv / gamma).sum()), rel=1e-5)
    if learn:
        gs = -(up64 * ff * inside * x64).sum() / sf ** 2 / math.sqrt(x.numel() * beta)
        assert float(q.scale.grad) == pytest.approx(float(gs), rel=1e-4)
    else:
        assert q.scale.grad is None


def test_qconv_output_bit_identical_to_separate_aten_ops(path):
    """QConv2d (de-normalization inside the weight quantizer's pass) gives, bit for bit,
    conv(x_q, w_q * h) with x_q, w_q, h = s_w' * s_a' each computed by plain ATen ops,
    s' = (s - s*g).detach() + s*g (the form before the fused output scale)."""
    import torch.nn.functional as F
    from mmtrs.quant import QConv2d
    torch.manual_seed(3)
    conv = QConv2d(8, 16, 3, padding=1, w_bits=4, a_bits=4, a_signed=False)
    x = torch.relu(torch.randn(2, 8, 20, 20))
    conv.train()
    y = conv(x)                       # first batch: initialises both scales
    y = conv(x)
    sw, sa = conv.weight_quantizer.scale.detach(), conv.act_quantizer.scale.detach()
    gw = 1 / math.sqrt(conv.weight.numel() * 7)
    ga = 1 / math.sqrt(x[0].numel() * 15)
    wq = (conv.weight.detach() * (8 / sw)).clamp(-8, 7).round() / 8
    xq = (x * (16 / sa)).clamp(0, 15).round() / 16
    h = ((sw - sw * gw) + sw * gw) * ((sa - sa * ga) + sa * ga)
    ref = F.conv2d(xq, wq * h, conv.bias, padding=1)
    assert torch.equal(y.detach(), ref)


def _lsq_reference(x, s, g, alpha, beta, gamma):
    """LSQ as its paper writes it (Esser et al., Alg. 1): grad-scaled s, clip, round with
    a straight-through estimator, all plain ATen ops with autograd; normalized by gamma
    as Eq. 13."""
    s = (s - s * g).detach() + s * g
    v = (x * gamma / s).clamp(alpha, beta)
    return (v + (v.round() - v).detach()) / gamma


@pytest.mark.parametrize('learn_w,post', [(True, False), (False, False), (True, True)])
def test_qconv_gradients_match_lsq_reference(path, learn_w, post):
    """Every gradient of a QConv2d step (input, weight, bias, s_w, s_a, post-scale),
    with h = s_w' * s_a' (* p) folded into the weight quantizer's node, equals that of an
    independent LSQ re-implementation in plain autograd ops, and, bit for bit, that of
    the earlier form that built h from one autograd node per factor."""
    import torch.nn.functional as F
    from mmtrs.quant import QConv2d
    torch.manual_seed(5)
    conv = QConv2d(8, 16, 3, padding=1, w_bits=4, a_bits=4, a_signed=False,
                   learn_weight_scale=learn_w, post_scale=post)
    x0 = torch.relu(torch.randn(2, 8, 20, 20))
    conv.train()
    conv(x0)                                           # first batch: sets both scales
    if post:
        conv.post_scale.data.fill_(1.3)
    up = torch.randn(2, 16, 20, 20)
    params = [p for p in (conv.weight, conv.bias, conv.weight_quantizer.scale,
                          conv.act_quantizer.scale, conv.post_scale)
              if p is not None and p.requires_grad]

    def grads(forward):
        x = x0.clone().requires_grad_(True)
        ys = forward(x)
        return torch.autograd.grad((ys * up).sum(), [x] + params)

    def earlier(x):  # one autograd node per factor of h, then the fused output scale
        xq = conv.act_quantizer(x)
        wq = conv.weight_quantizer(conv.weight, out_scale=lambda: [(conv.denorm_factor(),
                                                                    None)])
        return F.conv2d(xq, wq, conv.bias, padding=1)

    def reference(x):
        wq_, aq = conv.weight_quantizer, conv.act_quantizer
        gw = 1 / math.sqrt(conv.weight.numel() * 7)
        ga = 1 / math.sqrt(x[0].numel() * 15)
        sw = wq_.scale if learn_w else wq_.scale.detach()
        xq = _lsq_reference(x, aq.scale, ga, 0, 15, 16)
        wq = _lsq_reference(conv.weight, sw, gw, -8, 7, 8)
        h = ((sw - sw * gw).detach() + sw * gw if learn_w else sw) * \
            ((aq.scale - aq.scale * ga).detach() + aq.scale * ga)
        if post:
            h = h * conv.post_scale
        return F.conv2d(xq, wq * h, conv.bias, padding=1)

    got, old, ref = grads(conv), grads(earlier), grads(reference)
    for g, o, r in zip(got, old, ref):
        assert torch.equal(g, o)                    # bit for bit
        assert torch.allclose(g, r, rtol=1e-3, atol=1e-5), (g - r).abs().max()
    if not learn_w:
        assert conv.weight_quantizer.scale.grad is None
