"""The int8 deployment graph (mmtrs/export/int8_deploy.py, int8_grid.py): uint8 forms of
Eq. 13 checked by hand and in onnxruntime, every quantized conv of the demo detectors
run as QLinearConv (counted in onnxruntime's optimized graph), and BatchNorm folding
checked against the PyTorch model."""
import json
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config

from conftest import ROOT

onnx = pytest.importorskip('onnx')
ort = pytest.importorskip('onnxruntime')

from mmtrs.export import (ExportError, build_detector, collect_quant_layers,  # noqa: E402
                          count_fusion, export_network, quantizer_grid, to_int8,
                          uint8_grid)
from mmtrs.export.int8_deploy import META_RELU6, read_int8_tensors  # noqa: E402
from mmtrs.export.onnx_export import metadata  # noqa: E402
from mmtrs.export.int8_grid import Uint8Grid  # noqa: E402

R18_W4A4 = osp.join(ROOT, 'configs/demo/retinanet_r18_w4a4_sgd_demo.py')
MBV2_W3A3 = osp.join(ROOT, 'configs/demo/retinanet_mbv2_w3a3_sgd_demo.py')
SIZE = 64


def _calibrated(config, seed=0, negative_bn=False):
    """A demo model whose quantizer scales were set by one training-mode forward."""
    torch.manual_seed(seed)
    model = build_detector(Config.fromfile(config))
    if negative_bn:  # every third channel of every BatchNorm gets a negative gain
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                with torch.no_grad():
                    m.weight[::3] *= -1
    model.train()
    model(torch.randn(2, 3, SIZE, SIZE), mode='tensor')
    return model.eval()


def _int8(model, tmp_path, grid='exact', name='model'):
    path = str(tmp_path / f'{name}_qcdq.onnx')
    proto = export_network(model, path, 'qcdq', (1, 3, SIZE, SIZE))
    calib = [np.random.default_rng(1).standard_normal((2, 3, SIZE, SIZE)).astype(np.float32)]
    out = str(tmp_path / f'{name}_int8.onnx')
    onnx.save(to_int8(proto, calib, grid), out)
    return out


def test_uint8_grids_by_hand():
    # exact: the trained step, zero point 0 (unsigned) / 128 (signed), uint8 Clip
    # (steps are powers of two times small integers: exact in float32)
    assert uint8_grid(0, 15, 0.125) == Uint8Grid(0.125, 0, (0, 15))
    assert uint8_grid(-8, 7, 0.125) == Uint8Grid(0.125, 128, (120, 135))
    assert uint8_grid(-128, 127, 0.5) == Uint8Grid(0.5, 128, None)  # 8 bit: no Clip
    assert uint8_grid(0, 1, 0.5).clip == (0, 1)  # unsigned binary
    # subset: 8-bit grid of step d/k holding the b-bit levels, k = 255 // (2^b - 1)
    assert uint8_grid(0, 15, 4.25, 'subset') == Uint8Grid(0.25, 0, None)  # 15 * 17 = 255
    assert uint8_grid(-8, 7, 4.25, 'subset') == Uint8Grid(0.25, 136, None)  # -8*17 + 136 = 0
    assert uint8_grid(-2, 1, 21.25, 'subset') == Uint8Grid(0.25, 170, None)  # 2 bit: k = 85
    assert uint8_grid(0, 7, 9.0, 'subset') == Uint8Grid(0.25, 0, None)  # 3 bit: k = 36
    # from a quantizer: 4-bit unsigned, s = 2 -> step s / 16
    assert quantizer_grid(4, False, 2.0) == Uint8Grid(0.125, 0, (0, 15))
    assert quantizer_grid(3, True, 0.8).zero_point == 128
    with pytest.raises(ExportError, match='signed binary'):
        quantizer_grid(1, True, 1.0)


def _levels_session(grid):
    """QuantizeLinear [-> uint8 Clip] of `grid` as a one-input onnxruntime session."""
    from onnx import TensorProto, helper, numpy_helper
    inits = [numpy_helper.from_array(np.float32(grid.scale), 's'),
             numpy_helper.from_array(np.uint8(grid.zero_point), 'z')]
    nodes = [helper.make_node('QuantizeLinear', ['x', 's', 'z'], ['q'])]
    out = 'q'
    if grid.clip:
        inits += [numpy_helper.from_array(np.uint8(v), n) for v, n in zip(grid.clip, 'lh')]
        nodes.append(helper.make_node('Clip', ['q', 'l', 'h'], ['c']))
        out = 'c'
    g = helper.make_graph(nodes, 'g', [helper.make_tensor_value_info('x', TensorProto.FLOAT,
                                                                     [None])],
                          [helper.make_tensor_value_info(out, TensorProto.UINT8, [None])],
                          inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid('', 17)])
    m.ir_version = 8
    return ort.InferenceSession(m.SerializeToString(), providers=['CPUExecutionProvider'])


@pytest.mark.parametrize('bits,signed', [(4, False), (4, True), (3, False), (2, True),
                                         (8, True), (1, False)])
def test_exact_grid_is_eq13_in_onnxruntime(bits, signed):
    """uint8 levels - zero point = round(clip(gamma x / s, alpha, beta)), Eq. 13
    computed here in float64, on values that are no rounding ties."""
    s = 1.3
    alpha, beta = (-2 ** (bits - 1), 2 ** (bits - 1) - 1) if signed else (0, 2 ** bits - 1)
    gamma = 1 if bits == 1 else (2 ** (bits - 1) if signed else 2 ** bits)
    grid = quantizer_grid(bits, signed, s)
    x = np.random.default_rng(bits).uniform(-1.5 * s, 1.5 * s, 4000).astype(np.float32)
    v = x.astype(np.float64) * gamma / s
    x = x[np.abs(v - np.floor(v) - 0.5) > 1e-3]
    want = np.clip(np.round(x.astype(np.float64) * gamma / s), alpha, beta)
    got = _levels_session(grid).run(None, {'x': x})[0].astype(np.int32) - grid.zero_point
    assert np.array_equal(got, want)


@pytest.mark.parametrize('bits,signed', [(4, False), (4, True), (2, False), (3, True)])
def test_subset_grid_holds_the_low_bit_levels(bits, signed):
    """'subset': every b-bit level x_d * d lands on uint8 level x_d * k + z, values past
    the b-bit range clip at its ends (exactly for 4 and 2 bits, 3/36 d past beta for
    3 bits), and in between the rounding is k times finer."""
    s = 1.3
    alpha, beta = (-2 ** (bits - 1), 2 ** (bits - 1) - 1) if signed else (0, 2 ** bits - 1)
    gamma = 2 ** (bits - 1) if signed else 2 ** bits
    k = 255 // (beta - alpha)
    grid = quantizer_grid(bits, signed, s, 'subset')
    assert grid.zero_point == -alpha * k and grid.clip is None
    levels = np.arange(alpha, beta + 1)
    x = (levels * np.float32(s) / gamma).astype(np.float32)
    sess = _levels_session(grid)
    assert sess.run(None, {'x': x})[0].tolist() == (levels * k - alpha * k).tolist()
    ends = sess.run(None, {'x': np.float32([-10 * s, 10 * s])})[0].astype(int)
    assert ends[0] == 0 and ends[1] == 255
    top = (255 - grid.zero_point) * grid.scale
    assert top == pytest.approx(beta * s / gamma * (1 + (255 % (beta - alpha)) /
                                                    (k * beta)), rel=1e-6)


@pytest.fixture(scope='module')
def r18(tmp_path_factory):
    """The R18 demo W4A4 model (every third BatchNorm gain negative) and its int8 graph."""
    model = _calibrated(R18_W4A4, negative_bn=True)
    return model, _int8(model, tmp_path_factory.mktemp('r18'))


@pytest.fixture(scope='module')
def mbv2():
    """The light W3A3 model: depthwise convs, ReLU6, 3-bit grids."""
    return _calibrated(MBV2_W3A3)


@pytest.mark.parametrize('case', ['r18_exact', 'mbv2_exact', 'mbv2_subset'])
def test_every_quantized_conv_runs_as_qlinearconv(case, r18, mbv2, tmp_path):
    """Counted in the graph onnxruntime saves after optimizing, at the extended level
    (where the QDQ fusion runs) and with everything on."""
    if case == 'r18_exact':
        model, path = r18
    else:
        model = mbv2
        path = _int8(model, tmp_path, case.split('_')[1])
    proto = onnx.load(path)
    calls = sum(1 for n in proto.graph.node if n.op_type == 'Conv')
    assert calls >= len(collect_quant_layers(model))  # the head convs run per level
    for level in ('extended', 'all'):
        fused = count_fusion(path, level)
        assert fused['quantized_convs'] == calls, level
        assert fused['unfused'] == 0 and fused['float_conv'] == 0, (level, fused['ops'])
        assert fused['qlinear_conv'] == calls
    # integer weights are still the QAT levels, bit for bit
    got = read_int8_tensors(proto)
    for lay in collect_quant_layers(model):
        levels = lay.weight_levels().numpy()
        assert np.array_equal(got[lay.name]['levels'], levels), lay.name
        # stored as k x the levels, k as large as int8 and unsaturated int16 sums of
        # two u8 x s8 products allow: biases k times finer
        k, m, row = got[lay.name]['refinement'], int(np.abs(levels).max()), got[lay.name]
        top = row['act_clip'][1] if row.get('act_clip') else 255
        ok = lambda k: k * m <= 127 and 2 * top * k * m <= 32767  # noqa: E731
        assert ok(k) and not ok(k + 1) or (k == 1 and not ok(1)), (lay.name, k, m, top)
    if case == 'mbv2_exact':  # a ReLU6 before a 3-bit quantizer merged into its uint8 Clip
        merged = json.loads(metadata(proto)[META_RELU6])
        assert merged and set(merged.values()) == {6.0}


def test_calibration_runs_the_folded_network(monkeypatch, tmp_path):
    """The 8-bit re-quantization ranges are measured on the graph being rewritten: with
    its BatchNorms folded into the convs, the tensors it calibrates must be those of
    model_qcdq.onnx (BatchNorm statistics far from 0 / 1 here, as in a trained model;
    measuring them without the folded scales and biases made ranges of another
    network, which cost a trained W3A3 MobileNetV2 6.7 AP)."""
    from onnx import TensorProto, helper
    from mmtrs.export import int8_deploy
    model = _calibrated(MBV2_W3A3, seed=2)
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                n = m.num_features
                m.running_mean.copy_(torch.randn(n, generator=g) * 0.5)
                m.running_var.copy_(torch.rand(n, generator=g) * 1.5 + 0.2)
                m.weight.copy_(torch.rand(n, generator=g) + 0.5)
                m.bias.copy_(torch.randn(n, generator=g) * 0.3)
    qcdq = export_network(model, str(tmp_path / 'q.onnx'), 'qcdq', (1, 3, SIZE, SIZE))
    x = np.random.default_rng(1).standard_normal((2, 3, SIZE, SIZE)).astype(np.float32)
    seen = {}
    real = int8_deploy._calibrate

    def spy(proto, tensors, calib_inputs, input_name):
        seen['ranges'] = real(proto, tensors, calib_inputs, input_name)
        return seen['ranges']

    monkeypatch.setattr(int8_deploy, '_calibrate', spy)
    to_int8(qcdq, [x])
    names = sorted(seen['ranges'])
    assert len(names) > 20
    for t in names:
        qcdq.graph.output.append(helper.make_tensor_value_info(t, TensorProto.FLOAT, None))
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(qcdq.SerializeToString(), so,
                                providers=['CPUExecutionProvider'])
    for t, v in zip(names, sess.run(names, {'input': x})):
        lo, hi = seen['ranges'][t]
        span = float(v.max() - v.min())
        # float folding may move a rare value across a rounding boundary: 2% slack
        assert abs(lo - v.min()) <= 0.02 * span and abs(hi - v.max()) <= 0.02 * span, t


def test_batchnorm_folded_into_per_channel_scales(r18):
    """Stem: 8-bit conv -> BatchNorm (some gains negative) -> ReLU. In the int8 graph the
    BatchNorm is gone, the weight scale per channel is s_w / gamma_w * g / sqrt(v + eps)
    (computed here), and the ReLU output equals the PyTorch model's (onnxruntime's
    reference kernels and its QLinearConv alike)."""
    model, path = r18
    proto = onnx.load(path)
    assert not [n for n in proto.graph.node if n.op_type == 'BatchNormalization']
    conv, bn = model.backbone.conv1, model.backbone.bn1
    s_w = np.float64(np.float32(float(conv.weight_quantizer.scale)) / np.float32(128))
    want = s_w * bn.weight.detach().double().numpy() / np.sqrt(
        bn.running_var.detach().double().numpy() + np.float64(np.float32(bn.eps)))
    got = read_int8_tensors(proto)['backbone.conv1']['w_scale']
    assert got.shape == (conv.out_channels,) and (got < 0).any()
    assert np.allclose(got, want, rtol=1e-6, atol=0)
    # the stem's ReLU output, PyTorch vs onnxruntime
    from onnx import TensorProto, helper
    feats = {}
    model.backbone.relu.register_forward_hook(lambda m, i, o: feats.setdefault('relu', o))
    x = torch.randn(1, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        model(x, mode='tensor')
    want = feats['relu'].numpy()
    relu = next(n for n in proto.graph.node if n.op_type == 'Relu')
    assert relu.input[0] == next(n.output[0] for n in proto.graph.node
                                 if n.name == 'backbone.conv1/Conv:0')
    proto.graph.output.append(helper.make_tensor_value_info(relu.output[0],
                                                            TensorProto.FLOAT, None))
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(proto.SerializeToString(), so,
                                providers=['CPUExecutionProvider'])
    got = sess.run([relu.output[0]], {'input': x.numpy()})[0]
    # int32 bias rounding (<= x_scale * w_scale / 2) and float summation order only
    assert np.abs(got - want).max() <= 1e-4 * np.abs(want).max()
