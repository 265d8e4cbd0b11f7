"""Checks of exported files against the fake-quant PyTorch model they came from.

  * `check_integer_tensors`: weight levels read back from each ONNX file and from the
    packed checkpoint equal `Quantizer.discretize` of the checkpoint's weights, bit for
    bit, and every scale / integer range equals the model's (float32 equality).
  * `compare_network`: on real inputs, per layer and per call, the activation levels
    computed by onnxruntime (the outputs of the `act_levels` nodes) against the levels
    of the PyTorch quantizer's input (`discretize`), and the head outputs (max and mean
    absolute difference relative to each output's std).
  * `fused_integer_kernels`: which nodes onnxruntime's full optimization turns the
    graph into (QLinearConv / ConvInteger = convs fused to integer kernels).
"""
import contextlib
import copy
import io
import json
import os
import tempfile
from collections import Counter, defaultdict

import numpy as np
import torch
from mmengine.evaluator import BaseMetric

from .onnx_detector import make_session, output_groups
from .int8_deploy import META_GRID, META_RELU6
from .onnx_export import INPUT_NAME, META_LAYERS, META_VARIANT, metadata, read_quant_tensors
from .packed import packed_levels

#: op types that are integer-arithmetic kernels in onnxruntime (ai.onnx and com.microsoft)
INTEGER_KERNELS = ('QLinearConv', 'ConvInteger', 'QLinearMatMul', 'MatMulInteger',
                   'MatMulIntegerToFloat', 'DynamicQuantizeMatMul', 'QGemm',
                   'NhwcQLinearConv', 'QLinearAdd', 'QLinearMul')


def _f32(x):
    return np.float32(x.detach().float().item() if torch.is_tensor(x) else x)


def check_integer_tensors(layers, onnx_protos, packed_blob=None):
    """[(source, layer, what, ok)] for every layer and file; `onnx_protos`:
    {label: ModelProto}. All ok = exported integers and scales are the model's."""
    rows = []
    for label, proto in onnx_protos.items():
        if _is_int8(proto):
            rows += _check_int8_tensors(label, layers, proto)
            continue
        found = read_quant_tensors(proto)
        for layer in layers:
            got = found.get(layer.name)
            if got is None:
                rows.append((label, layer.name, 'present', False))
                continue
            levels = layer.weight_levels().numpy()
            rows.append((label, layer.name, 'weight levels',
                         got['levels'].shape == levels.shape and
                         bool(np.array_equal(got['levels'], levels))))
            rows.append((label, layer.name, 'weight scale',
                         got['w_dq_scale'] == _f32(layer.weight_dq_scale())))
            if layer.aq is not None:
                alpha, beta, _ = layer.aq.qrange
                rows.append((label, layer.name, 'act scale',
                             got.get('a_dq_scale') == _f32(layer.act_dq_scale())))
                rows.append((label, layer.name, 'act range',
                             got.get('a_range') == [alpha, beta]))
    if packed_blob is not None:
        levels = packed_levels(packed_blob)
        tensors = packed_blob['tensors']
        for layer in layers:
            lv = levels.get(layer.name)
            rows.append(('packed', layer.name, 'weight levels',
                         lv is not None and torch.equal(lv, layer.weight_levels())))
            for qname in ('weight_quantizer', 'act_quantizer'):
                q = getattr(layer.module, qname)
                if q is None:
                    continue
                key = f'{layer.name}.{qname}.scale'
                rows.append(('packed', layer.name, f'{qname} scale',
                             key in tensors and torch.equal(tensors[key], q.scale.detach())))
    return rows


def _check_int8_tensors(label, layers, proto):
    """model_int8.onnx: weight levels bit for bit, and each activation quantizer's uint8
    form (scale, zero point, Clip) as int8_grid.py derives it from the model's
    quantizer (bits, signedness, scale)."""
    from .int8_deploy import read_int8_tensors
    from .int8_grid import Uint8Grid, quantizer_grid
    grid_kind = metadata(proto).get(META_GRID, 'exact')
    relu6 = json.loads(metadata(proto).get(META_RELU6, '{}'))
    found = read_int8_tensors(proto)
    rows = []
    for layer in layers:
        got = found.get(layer.name)
        if got is None:
            rows.append((label, layer.name, 'present', False))
            continue
        levels = layer.weight_levels().numpy()
        rows.append((label, layer.name, 'weight levels',
                     got['levels'].shape == levels.shape and
                     bool(np.array_equal(got['levels'], levels))))
        if layer.aq is not None:
            want = quantizer_grid(layer.aq.bits, layer.aq.signed, _f32(layer.aq.scale),
                                  grid_kind)
            hi = relu6.get(f'{layer.name}/act_levels:0')
            if hi is not None:  # a ReLU6 in front: round(min(x, 6) / d) = min(., round(6/d))
                top = want.zero_point + int(np.round(np.float32(hi) / np.float32(want.scale)))
                want = Uint8Grid(want.scale, want.zero_point,
                                 (want.clip[0], min(want.clip[1], top)))
            rows.append((label, layer.name, 'act uint8 grid',
                         got.get('act_scale') == np.float32(want.scale) and
                         got.get('act_zero_point') == want.zero_point and
                         got.get('act_clip') == (list(want.clip) if want.clip else None)))
    return rows


def _levels_dtype(row):
    from onnx import TensorProto
    return TensorProto.UINT8 if row['a_signed'] is False and not row['a_binary'] \
        else TensorProto.INT8


def _is_int8(proto):
    return metadata(proto).get(META_VARIANT) == 'int8'


def _level_nodes(proto):
    """{(layer, call): (node whose output holds the levels, zero point)}. In
    model_int8.onnx that is the uint8 Clip, or the QuantizeLinear where the b-bit range
    is the uint8 range (no Clip); its levels are the stored bytes minus the zero point."""
    from onnx import numpy_helper
    int8 = _is_int8(proto)
    inits = {i.name: i for i in proto.graph.initializer}
    out, quant = {}, {}
    for node in proto.graph.node:
        name, _, role = node.name.rpartition('/')
        kind, _, call = role.partition(':')
        if kind == 'act_levels':
            out[(name, int(call))] = node
        elif int8 and kind == 'act_quant':
            quant[(name, int(call))] = node
    zps = {}
    for key, q in quant.items():
        out.setdefault(key, q)
        zps[key] = int(numpy_helper.to_array(inits[q.input[2]]))
    return {k: (n, zps.get(k, 0)) for k, n in out.items()}


def with_level_outputs(proto):
    """A copy of an exported graph whose activation-level tensors are graph outputs.
    Returns (proto, [(layer, call, output name, zero point)])."""
    from onnx import TensorProto, helper
    proto = copy.deepcopy(proto)
    rows = json.loads(metadata(proto)[META_LAYERS])
    int8 = _is_int8(proto)
    taps = []
    for (name, call), (node, zp) in sorted(_level_nodes(proto).items()):
        taps.append((name, call, node.output[0], zp))
        proto.graph.output.append(helper.make_tensor_value_info(
            node.output[0], TensorProto.UINT8 if int8 else _levels_dtype(rows[name]), None))
    return proto, taps


class _LevelRecorder:
    """Forward pre-hooks on the quantized layers: each call's input and the integer
    levels the PyTorch quantizer computes from it, in call order."""

    def __init__(self, layers):
        self.levels = defaultdict(list)
        self.inputs = defaultdict(list)
        self.handles = [layer.module.register_forward_pre_hook(self._hook(layer))
                        for layer in layers if layer.aq is not None]

    def _hook(self, layer):
        def hook(module, args):
            self.inputs[layer.name].append(args[0].detach().clone())
            self.levels[layer.name].append(layer.aq.discretize(args[0]))
        return hook

    def remove(self):
        for h in self.handles:
            h.remove()


def quantizer_sessions(proto, graph_opt='disable'):
    """{layer: session} running only the layer's activation quantizer nodes, cut out of
    the exported graph (QuantizeLinear -> Clip, or GreaterOrEqual -> Where), so they can
    be fed the PyTorch model's own input of that layer: what differs then is the
    rounding alone, not upstream drift."""
    from onnx import TensorProto, helper
    nodes = {n.name: n for n in proto.graph.node}
    prod = {o: n for n in proto.graph.node for o in n.output}
    inits = {i.name: i for i in proto.graph.initializer}
    rows = json.loads(metadata(proto)[META_LAYERS])
    int8 = _is_int8(proto)
    out = {}
    for name, row in rows.items():
        q, lv = nodes.get(f'{name}/act_quant:0'), nodes.get(f'{name}/act_levels:0')
        if q is None or lv is None and not int8:
            continue
        chain = [n for n in (q, lv) if n is not None]
        consts = [prod[i] for n in chain for i in n.input
                  if i in prod and prod[i].op_type == 'Constant']
        used = list({i: inits[i] for n in chain for i in n.input if i in inits}.values())
        graph = helper.make_graph(
            consts + chain, 'act_quantizer',
            [helper.make_tensor_value_info(q.input[0], TensorProto.FLOAT, None)],
            [helper.make_tensor_value_info(chain[-1].output[0], TensorProto.UINT8 if int8
                                           else _levels_dtype(row), None)], used)
        sub = helper.make_model(graph, opset_imports=proto.opset_import)
        sub.ir_version = proto.ir_version
        out[name] = make_session(sub.SerializeToString(), graph_opt)
    return out


@torch.no_grad()
def compare_network(model, layers, onnx_path, batches, graph_opt='disable', threads=None):
    """Levels and head outputs of onnxruntime vs the PyTorch model on `batches`
    (preprocessed input tensors). Levels are compared two ways:
      * end to end: onnxruntime's levels (computed from onnxruntime's own input of the
        layer) vs PyTorch's (from PyTorch's input); a rounding difference upstream
        changes later layers' inputs slightly, so this includes the drift it causes;
      * isolated: the layer's quantizer nodes of the graph fed PyTorch's input of the
        layer: the rounding-order difference alone (round(x / (s/gamma)) in
        QuantizeLinear vs round(x * (gamma/s)) in the training quantizer).
    Returns a dict (see tools/verify_export.py)."""
    import onnx
    proto = onnx.load(onnx_path)
    debug, taps = with_level_outputs(proto)
    sess = make_session(onnx_path, graph_opt, threads)
    dbg = make_session(debug.SerializeToString(), graph_opt, threads)
    isolated = quantizer_sessions(proto, graph_opt)
    zps = {(layer, call): zp for layer, call, _, zp in taps}
    # the 'subset' grid rounds on the 8-bit grid, not to the b-bit levels: no level check
    compare_levels = metadata(proto).get(META_GRID, 'exact') == 'exact'
    n_heads = sum(output_groups(sess))
    e2e = defaultdict(lambda: [0, 0, 0])  # layer -> [elements, differing, max |d|]
    iso = defaultdict(lambda: [0, 0, 0])
    head = []  # (output index, max|d|/std, mean|d|/std)

    def count(stats, got, want):
        d = np.abs(got.astype(np.int32) - want.astype(np.int32))
        stats[0] += d.size
        stats[1] += int((d > 0).sum())
        stats[2] = max(stats[2], int(d.max()) if d.size else 0)

    for x in batches:
        rec = _LevelRecorder(layers)
        try:
            ref = model(x, mode='tensor')
        finally:
            rec.remove()
        ref = [t for group in ref for t in (group if isinstance(group, (list, tuple))
                                              else [group])]
        outs = sess.run(None, {INPUT_NAME: x.numpy()})
        for i, (r, o) in enumerate(zip(ref, outs)):
            d = np.abs(o - r.numpy())
            std = float(r.std()) or 1.0
            head.append((i, float(d.max()) / std, float(d.mean()) / std))
        if not compare_levels:
            continue
        dbg_outs = dbg.run([t[2] for t in taps], {INPUT_NAME: x.numpy()})
        for (layer, call, _, zp), got in zip(taps, dbg_outs):
            count(e2e[layer], got.astype(np.int16) - zp, rec.levels[layer][call].numpy())
        for layer, s in isolated.items():
            for inp, want in zip(rec.inputs[layer], rec.levels[layer]):
                got = s.run(None, {s.get_inputs()[0].name: inp.numpy()})[0]
                count(iso[layer], got.astype(np.int16) - zps.get((layer, 0), 0),
                      want.numpy())

    def summary(stats):
        total = sum(v[0] for v in stats.values())
        differ = sum(v[1] for v in stats.values())
        return dict(elements=total, differing=differ, fraction=differ / max(total, 1),
                    max_diff=max((v[2] for v in stats.values()), default=0),
                    layers_with_differences=sum(1 for v in stats.values() if v[1]))

    return dict(
        graph_opt=graph_opt, images=sum(int(x.shape[0]) for x in batches),
        head_outputs=n_heads,
        head_max_abs_over_std=max(h[1] for h in head),
        head_mean_abs_over_std=float(np.mean([h[2] for h in head])),
        levels_end_to_end=summary(e2e), levels_isolated=summary(iso),
        per_layer={k: dict(end_to_end=dict(zip(('elements', 'differing', 'max_diff'),
                                                e2e[k])),
                           isolated=dict(zip(('elements', 'differing', 'max_diff'),
                                             iso[k])))
                   for k in e2e})


def fused_integer_kernels(onnx_path, graph_opt='all'):
    """Op-type counts of the graph before and after onnxruntime's optimization, and the
    number of Conv nodes it turned into integer kernels."""
    import onnx
    before = Counter(n.op_type for n in onnx.load(onnx_path).graph.node)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, 'optimized.onnx')
        make_session(onnx_path, graph_opt, optimized_path=path)
        after = Counter(n.op_type for n in onnx.load(path).graph.node)
    integer = {k: after[k] for k in INTEGER_KERNELS if after.get(k)}
    return dict(graph_opt=graph_opt, conv_before=before.get('Conv', 0),
                conv_after=after.get('Conv', 0) + after.get('FusedConv', 0),
                integer_kernels=integer,
                integer_conv=sum(after.get(k, 0) for k in ('QLinearConv', 'ConvInteger',
                                                             'NhwcQLinearConv')),
                quantize_after=after.get('QuantizeLinear', 0),
                dequantize_after=after.get('DequantizeLinear', 0),
                ops_after=dict(after.most_common()))



class UnroundedCocoAP(BaseMetric):
    """COCO bbox AP from pycocotools without CocoMetric's rounding to 3 decimals
    (0.1 AP), so that differences of hundredths of an AP between two paths show.
    Labels map to category ids as in CocoMetric (`getCatIds(catNms=classes)`)."""

    default_prefix = 'unrounded'

    def __init__(self, ann_file):
        super().__init__()
        self.ann_file = ann_file

    def process(self, data_batch, data_samples):
        for ds in data_samples:
            p = ds['pred_instances']
            self.results.append((ds['img_id'], p['bboxes'].cpu().numpy(),
                                 p['scores'].cpu().numpy(), p['labels'].cpu().numpy()))

    def compute_metrics(self, results):
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
        with contextlib.redirect_stdout(io.StringIO()):
            gt = COCO(self.ann_file)
            cat_ids = gt.getCatIds(catNms=list(self.dataset_meta['classes']))
            dets = [dict(image_id=int(img), category_id=cat_ids[int(c)],
                         bbox=[float(b[0]), float(b[1]), float(b[2] - b[0]),
                               float(b[3] - b[1])], score=float(s))
                    for img, boxes, scores, labels in results
                    for b, s, c in zip(boxes, scores, labels)]
            if not dets:
                return dict(bbox_mAP=0.0, bbox_mAP_50=0.0, bbox_mAP_75=0.0, detections=0)
            ev = COCOeval(gt, gt.loadRes(dets), 'bbox')
            ev.params.imgIds = sorted({int(r[0]) for r in results})
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
        return dict(bbox_mAP=float(ev.stats[0]), bbox_mAP_50=float(ev.stats[1]),
                    bbox_mAP_75=float(ev.stats[2]), detections=len(dets))
