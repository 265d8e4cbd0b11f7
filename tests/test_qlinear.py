"""QLinear: against an independent fake-quant linear (forward and LSQ/STE gradients),
activation signedness on transformer inputs, conversion of a Swin child config, TR
scheduling over Linear weights (Eq. 5), and an AdamWT Swin demo run resumed
bit-identically."""
import copy
import math
import os.path as osp

import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from torch import nn

import mmtrs  # noqa: F401
from mmtrs.quant import NegativeInputError, QConv2d, QLinear, quantize_model, quantized_layers
from mmtrs.utils import load_checkpoint_file

from conftest import ROOT, data_options, run_tool, short_run

SWIN_COCO = osp.join(ROOT, 'configs/retinanet_swin-t_w4a4_adamwt.py')
SWIN_DEMO_TRS = 'configs/demo/retinanet_swin_w4a4_adamwt_demo.py'


# ---- an independent LSQ fake-quant linear (Esser et al. 2020), written from the paper ---
def _grad_scale(s, g):
    return (s - s * g).detach() + s * g


def _round_ste(x):
    return (x.round() - x).detach() + x


def lsq_fake_quant(x, s, bits, signed, n_features):
    """Step s/gamma, levels [alpha, beta]: LSQ with its 1/sqrt(N * beta) scale gradient."""
    if signed:
        alpha, beta, gamma = -2 ** (bits - 1), 2 ** (bits - 1) - 1, 2 ** (bits - 1)
    else:
        alpha, beta, gamma = 0, 2 ** bits - 1, 2 ** bits
    s = _grad_scale(s, 1 / math.sqrt(n_features * beta))
    return _round_ste(torch.clamp(x * gamma / s, alpha, beta)) * s / gamma


@pytest.mark.parametrize('signed', [False, True])
def test_qlinear_matches_independent_fake_quant_linear(signed):
    torch.manual_seed(0)
    q = QLinear(16, 8, w_bits=4, a_bits=4, a_signed=signed)
    x = torch.randn(3, 5, 16)                      # (batch, tokens, channels)
    if not signed:
        x = x.relu()
    x.requires_grad_(True)
    q.train()
    y = q(x)
    s_w, s_a = q.weight_quantizer.scale, q.act_quantizer.scale
    # init (EWGS/LTS defaults): 3 std(w); 3 std(x) (signed) or 3 std(x)/sqrt(1-2/pi)
    assert float(s_w) == pytest.approx(3 * float(q.weight.std()), rel=1e-5)
    mult = 3 if signed else 3 / math.sqrt(1 - 2 / math.pi)
    assert float(s_a) == pytest.approx(mult * float(x.detach().std()), rel=1e-5)
    # the reference on copies of the same leaves
    w = q.weight.detach().clone().requires_grad_(True)
    b = q.bias.detach().clone().requires_grad_(True)
    sw = s_w.detach().clone().requires_grad_(True)
    sa = s_a.detach().clone().requires_grad_(True)
    x2 = x.detach().clone().requires_grad_(True)
    ref = F.linear(lsq_fake_quant(x2, sa, 4, signed, 5 * 16),
                   lsq_fake_quant(w, sw, 4, True, w.numel()), b)
    torch.testing.assert_close(y, ref, rtol=1e-5, atol=1e-5)
    gy = torch.randn_like(y)
    y.backward(gy)
    ref.backward(gy)
    for got, want in ((q.weight.grad, w.grad), (q.bias.grad, b.grad), (x.grad, x2.grad),
                      (s_w.grad, sw.grad), (s_a.grad, sa.grad)):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)


def test_layernorm_and_gelu_outputs_get_signed_quantizers():
    torch.manual_seed(0)
    block = nn.Sequential(nn.LayerNorm(16), nn.Linear(16, 32), nn.GELU(), nn.Linear(32, 16))
    quantize_model(block, dict(first_layer=None, max_float_share=None))
    x = torch.randn(2, 7, 16)
    block(x)
    assert block[1].act_quantizer.signed      # LayerNorm output
    assert block[3].act_quantizer.signed      # GELU output (min -0.17)


def test_unsigned_quantizer_on_an_attention_input_raises_instead_of_clipping():
    block = nn.Sequential(nn.LayerNorm(16), nn.Linear(16, 48))
    quantize_model(block, dict(first_layer=None, unsigned_act=[r'^1$'],
                               max_float_share=None))
    with pytest.raises(NegativeInputError, match='quant_cfg.signed_act'):
        block(torch.randn(2, 7, 16))


def test_from_linear_shares_parameters_and_frozen_layers_keep_frozen_scales():
    lin = nn.Linear(4, 3)
    lin.weight.requires_grad_(False)
    q = QLinear.from_linear(lin, w_bits=4, a_bits=4)
    assert q.weight is lin.weight and q.bias is lin.bias
    assert not q.weight_quantizer.scale.requires_grad
    assert not q.act_quantizer.scale.requires_grad
    assert {'weight', 'bias'} <= set(q.state_dict())


def test_w8a8_qlinear_reproduces_fp_linear():
    """De-normalization (Eq. 3): at 8 bits a converted linear computes nearly the FP
    output, at the FP scale."""
    torch.manual_seed(0)
    lin = nn.Linear(64, 32)
    x = torch.randn(4, 10, 64)
    q = QLinear.from_linear(copy.deepcopy(lin), w_bits=8, a_bits=8, init_mult=12.0)
    y_q, y = q(x), lin(x)
    cos = F.cosine_similarity(y_q.flatten(), y.flatten(), dim=0)
    assert cos > 0.999, float(cos)
    assert float(y_q.norm() / y.norm()) == pytest.approx(1.0, abs=0.01)


def build(cfg_model):
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    register_all_modules()
    return MODELS.build(copy.deepcopy(cfg_model))


def test_swin_child_config_converts_every_linear_and_conv_of_its_backbone():
    """configs/retinanet_swin-t_w4a4_adamwt.py: full Swin-T; every Conv2d and Linear of
    the backbone is quantized (patch embedding conv at 8 bit, the rest at 4)."""
    cfg = Config.fromfile(SWIN_COCO)
    model = build(cfg.model)
    bb = dict(model.backbone.named_modules())
    floats = [n for n, m in bb.items() if isinstance(m, (nn.Linear, nn.Conv2d))
              and not isinstance(m, (QLinear, QConv2d))]
    assert not floats, floats
    qlin = [n for n, m in bb.items() if isinstance(m, QLinear)]
    # per block qkv, proj, 2 MLP linears; 3 patch-merging reductions; Swin-T: 12 blocks
    assert len(qlin) == 4 * 12 + 3
    assert isinstance(bb['patch_embed.projection'], QConv2d)
    assert bb['patch_embed.projection'].weight_quantizer.bits == 8
    assert all(bb[n].weight_quantizer.bits == 4 and bb[n].act_quantizer.bits == 4
               for n in qlin)
    # every quantized layer is TR-scheduled, linear weights included
    wrapper = build_optim_wrapper(model, copy.deepcopy(cfg.optim_wrapper))
    names = set(wrapper.counter.names)
    assert {f'backbone.{n}' for n in qlin} <= names
    n_lin = sum(bb[n].weight.numel() for n in qlin)
    assert n_lin > 0.9 * sum(p.numel() for p in model.backbone.parameters())
    assert int(wrapper.counter.numels.sum()) == sum(
        m.weight.numel() for _, m in quantized_layers(model))


def test_tr_scheduling_counts_linear_weights_eq5():
    """Eq. 5 over a conv + linear model: k = (#weights whose level changed) / N, N
    counting both layers' weights, against an independent count of levels."""
    torch.manual_seed(0)
    model = nn.Sequential(QConv2d(3, 4, 3, w_bits=4, a_bits=None, learn_weight_scale=False),
                          nn.Flatten(), QLinear(4 * 6 * 6, 5, w_bits=4, a_bits=4,
                                                learn_weight_scale=False))
    wrapper = build_optim_wrapper(model, dict(
        type='TRSOptimWrapper', constructor='TRSOptimWrapperConstructor',
        optimizer=dict(type='AdamW', lr=0.02, weight_decay=0.01), init_target=0.05,
        eta=0.01, tr_momentum=0.5))
    assert wrapper.counter.names == ['0', '2']

    def levels():
        out = []
        for m in (model[0], model[2]):
            s = m.weight_quantizer.scale.detach()
            out.append(torch.clamp(torch.round(m.weight.detach() * (8 / s)), -8, 7))
        return out

    x = torch.randn(2, 3, 8, 8)
    K = 0.0
    prev = None
    for step in range(4):
        wrapper.zero_grad()
        model(x).square().mean().backward()
        before = levels()
        wrapper.step()
        if prev is not None:
            changed = sum(int((a != b).sum()) for a, b in zip(before, prev))
            n = model[0].weight.numel() + model[2].weight.numel()
            k = changed / n
            K = 0.5 * K + 0.5 * k
            assert wrapper.transition_rate == pytest.approx(k, abs=1e-12)
            assert wrapper.running_tr == pytest.approx(K, abs=1e-12)
        prev = before
    assert K > 0  # weights did move: the check above is not vacuous


def test_adamwt_swin_demo_trains_and_resumes_bit_identically(tiny_coco, tmp_path):
    """The AdamWT Swin demo (TRSOptimWrapper over AdamW) trains 4 steps; a run resumed
    from its step-2 checkpoint ends with the same weights and TR state."""
    # fixed R^0 (the config measures it over 30 steps); eta='auto' = U^0 / (R^0 * 50):
    # scaled to AdamW's LR (a fixed eta tuned for SGD would drive U to 0 at once)
    opts = [*data_options(tiny_coco), *short_run(4, 2), 'load_from=None',
            'train_cfg.val_interval=100',  # no evaluation: only training state is compared
            'optim_wrapper.init_target=0.01', 'optim_wrapper.eta=auto',
            'param_scheduler.0.T_max=4', 'param_scheduler.0.end=4',
            'param_scheduler.1.T_max=4', 'param_scheduler.1.end=4']
    ref = str(tmp_path / 'ref')
    run_tool(['tools/train.py', SWIN_DEMO_TRS, '--work-dir', ref, '--cfg-options', *opts])
    wd = tmp_path / 'resumed'
    wd.mkdir()
    (wd / 'iter_2.pth').write_bytes((tmp_path / 'ref' / 'iter_2.pth').read_bytes())
    run_tool(['tools/train.py', SWIN_DEMO_TRS, '--work-dir', str(wd), '--resume',
              str(wd / 'iter_2.pth'), '--cfg-options', *opts])
    a = load_checkpoint_file(osp.join(ref, 'iter_4.pth'))
    b = load_checkpoint_file(str(wd / 'iter_4.pth'))
    qkv = 'backbone.stages.0.blocks.0.attn.w_msa.qkv.weight'
    assert qkv in a['state_dict']
    assert not torch.equal(a['state_dict'][qkv],
                           load_checkpoint_file(str(wd / 'iter_2.pth'))['state_dict'][qkv])
    # (the linear weights trained)
    for k, v in a['state_dict'].items():
        assert torch.equal(v, b['state_dict'][k]), k
    ta, tb = a['optimizer']['trs'], b['optimizer']['trs']
    assert ta['steps'] == tb['steps'] == 4 and float(ta['U'][0]) > 0
    assert any('qkv' in n for n in ta['layer_names'])
    for key in ('K', 'U', 'k'):
        assert torch.equal(ta[key], tb[key]), key
    for la, lb in zip(ta['prev_levels'], tb['prev_levels']):
        assert torch.equal(la, lb)
