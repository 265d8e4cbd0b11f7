"""The int8 deployment graph (model_int8.onnx): model_qcdq.onnx rewritten so that
onnxruntime's CPU execution provider runs every quantized conv as QLinearConv.

onnxruntime (1.32, qdq_selectors.cc) turns `DequantizeLinear(x), DequantizeLinear(W),
DequantizeLinear(bias) -> Conv -> QuantizeLinear` into QLinearConv when: x and the
output are uint8 (x86), the Conv's output goes to exactly one QuantizeLinear (a Relu in
between folds when that QuantizeLinear's zero point is 0), W is int8 with zero point 0
(per-tensor or per-channel scale on axis 0), the bias is int32 with scale x_scale *
w_scale. model_qcdq.onnx meets none of it: a conv's output goes through BatchNorm,
GroupNorm or a residual Add before the next quantizer, and biases are float. The
rewrite, on the graph (node names `<layer>/<role>:<call>` of onnx_export.py):

1. BatchNorm after a quantized conv is folded into the conv: the integer weight levels
   stay the QAT levels w_d, the per-channel scale becomes (s_w [* p] / gamma_w) * g_c /
   sqrt(v_c + eps) (the de-normalization h of Eq. 3 is already in s_w * s_a, split over
   the weight and activation scales, layers.py), the bias (b - mu) * g / sqrt(v + eps)
   + beta.
2. Each activation quantizer becomes its uint8 form (int8_grid.py): exactly Eq. 13 by
   default (QuantizeLinear with the trained step, zero point 0 / 128, a uint8 Clip to
   the b-bit range).
3. Where a quantized conv's output (after its Relu / ReLU6) feeds anything but one
   activation quantizer (a BatchNorm-free conv into GroupNorm, a residual Add, two
   heads, a graph output), an 8-bit QuantizeLinear is added there, its range
   calibrated (min / max) on `calib_inputs` (run on this graph with the BatchNorms
   already folded); with int8_adds=True so are the outputs of residual/FPN Adds
   (onnxruntime then runs them as QLinearAdd); MaxPool/Resize outputs get their
   input's scale (they then run on uint8). These 8-bit re-quantizations are not in
   the QAT model: they are the approximation of this graph, measured by
   tools/verify_export.py.
4. Weight levels are stored times an integer k (weight_refinement; the scale divided
   by k: the same weights), so that biases, int32 levels round(b / (x_scale *
   w_scale)) with exactly that scale, are rounded k times finer.

Per-channel weight scales may be negative (a negative BatchNorm gain); onnxruntime's
QLinearConv handles them (tests/test_export_int8.py compares the outputs).
"""
import json
import re
from collections import defaultdict

import numpy as np

from .errors import ExportError
from .int8_grid import GRIDS, uint8_grid
from .qdq_modules import LEVELS_SUFFIX

#: metadata key: the activation grid of model_int8.onnx ('exact' or 'subset')
META_GRID = 'mmtrs.int8_grid'
#: metadata key: {uint8 Clip node: upper bound of the float Clip (ReLU6) merged into it}
META_RELU6 = 'mmtrs.int8_relu6_merged'
#: metadata key: {layer: k}: its int8 weights are k x the QAT levels (weight_refinement)
META_REFINE = 'mmtrs.int8_weight_refinement'
_QCONV = re.compile(r'^(?P<layer>.+)/(?P<op>Conv|Gemm|MatMul):(?P<call>\d+)$')
#: ops that onnxruntime runs on uint8 directly when DQ -> op -> Q share scale and zp
_SAME_GRID_OPS = ('MaxPool', 'Resize')


class _Graph:
    """A mutable view of an ONNX graph: initializer values, producers, consumers."""

    def __init__(self, proto):
        self.proto = proto
        self.g = proto.graph
        self._n = 0
        self.relu6_merged = {}  # uint8 Clip node name -> the float Clip bound it took

    @property
    def inits(self):
        return {i.name: i for i in self.g.initializer}

    def value(self, name):
        from onnx import numpy_helper
        init = self.inits.get(name)
        if init is None:
            raise ExportError(f'tensor `{name}` is not a constant of the graph.')
        return numpy_helper.to_array(init)

    def is_const(self, name):
        return name in self.inits

    def producers(self):
        return {o: n for n in self.g.node for o in n.output}

    def consumers(self):
        out = defaultdict(list)
        for n in self.g.node:
            for i in n.input:
                out[i].append(n)
        return out

    def graph_outputs(self):
        return {o.name for o in self.g.output}

    def add_init(self, name, array):
        from onnx import numpy_helper
        for i, init in enumerate(self.g.initializer):
            if init.name == name:
                del self.g.initializer[i]
                break
        self.g.initializer.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def fresh(self, base):
        self._n += 1
        return f'{base}__{self._n}'

    def remove(self, node):
        self.g.node.remove(node)


def _inline_constants(gr):
    """Constant nodes become initializers; Identity of an initializer is bypassed."""
    from onnx import helper, numpy_helper
    outputs = gr.graph_outputs()
    for node in list(gr.g.node):
        if node.op_type == 'Constant' and len(node.attribute) == 1:
            attr = node.attribute[0]
            value = helper.get_attribute_value(attr)
            arr = numpy_helper.to_array(value) if attr.name == 'value' else np.array(
                value, dtype=np.float32 if attr.name.startswith('value_float') else np.int64)
            gr.add_init(node.output[0], arr)
            gr.remove(node)
    inits = gr.inits
    for node in list(gr.g.node):
        if node.op_type == 'Identity' and node.input[0] in inits and \
                node.output[0] not in outputs:
            _rename_uses(gr, node.output[0], node.input[0])
            gr.remove(node)


def _rename_uses(gr, old, new):
    for n in gr.g.node:
        for i, name in enumerate(n.input):
            if name == old:
                n.input[i] = new


def _quant_convs(gr):
    """[(layer, call, Conv node)] of the quantized layers, in graph order."""
    out = []
    for node in gr.g.node:
        m = _QCONV.match(node.name)
        if not m:
            continue
        if m['op'] != 'Conv':
            raise ExportError(f'layer `{m["layer"]}` is a quantized {m["op"]} (QLinear): '
                              'the int8 deployment covers quantized convs only; deploy '
                              'model_qcdq.onnx for this model.')
        out.append((m['layer'], int(m['call']), node))
    return out


def _fold_batchnorm(gr, conv):
    """Fold a BatchNormalization that is the conv's only consumer into it (in float,
    `_fold_in_float`: the weight scale times g / sqrt(v + eps) per output channel).
    Returns the folded bias (float64), or the conv's own bias (or None) when no
    BatchNorm follows."""
    cons = gr.consumers()[conv.output[0]]
    bias = gr.value(conv.input[2]).astype(np.float64) if len(conv.input) > 2 and \
        conv.input[2] else None
    if len(cons) != 1 or cons[0].op_type != 'BatchNormalization' or \
            conv.output[0] in gr.graph_outputs():
        return bias
    bn = cons[0]
    eps = next((a.f for a in bn.attribute if a.name == 'epsilon'), 1e-5)
    gain, beta, mean, var = (gr.value(i).astype(np.float64) for i in bn.input[1:5])
    factor = gain / np.sqrt(var + np.float64(np.float32(eps)))
    bias = (0.0 if bias is None else bias) - mean
    bias = bias * factor + beta
    conv.output[0] = bn.output[0]
    gr.remove(bn)
    _fold_in_float(gr, conv, factor, bias)
    return bias


def _fold_in_float(gr, conv, factor, bias):
    """Put the folded BatchNorm into the graph at once, as a per-channel float weight
    scale and a float bias: the calibration of the 8-bit re-quantizations runs this
    graph, and without the BatchNorm its ranges would be those of another network.
    `_quantize_weights_and_bias` later replaces both by their integer forms."""
    from onnx import helper
    wdq = gr.producers()[conv.input[1]]
    w_scale = np.float64(gr.value(wdq.input[1]))
    tag = f'{wdq.name}/folded'
    s = gr.add_init(f'{tag}_scale', (w_scale * factor).astype(np.float32))
    z = gr.add_init(f'{tag}_zero_point', np.zeros(factor.shape, np.int8))
    new = helper.make_node('DequantizeLinear', [wdq.input[0], s, z], [wdq.output[0]],
                           name=wdq.name, axis=0)
    idx = list(gr.g.node).index(wdq)
    gr.remove(wdq)
    gr.g.node.insert(idx, new)
    b = gr.add_init(f'{tag}_bias', bias.astype(np.float32))
    if len(conv.input) > 2:
        conv.input[2] = b
    else:
        conv.input.append(b)


class _Act:
    """The uint8 quantizer in front of a quantized conv (or a calibrated one)."""

    def __init__(self, grid, q_node, clip_node=None):
        self.grid, self.q, self.clip = grid, q_node, clip_node

    def foldable_after(self, act, gr):
        """Whether onnxruntime folds activation node `act` (None, Relu, Clip) in front
        of this QuantizeLinear into the conv before it."""
        if act is None:
            return True
        if act.op_type == 'Relu':
            return self.grid.zero_point == 0
        lo, hi = _clip_bounds(gr, act)
        s, z = self.grid.scale, self.grid.zero_point
        eps = np.finfo(np.float32).eps
        return lo - (0 - z) * s <= eps and (255 - z) * s - hi <= eps


def _clip_bounds(gr, clip):
    lo = float(gr.value(clip.input[1])) if len(clip.input) > 1 and clip.input[1] \
        else -np.inf
    hi = float(gr.value(clip.input[2])) if len(clip.input) > 2 and clip.input[2] \
        else np.inf
    return lo, hi


def _uint8_quantizer(gr, name, x, grid, out_name=None):
    """QuantizeLinear [-> uint8 Clip] -> DequantizeLinear nodes of `grid` on tensor x.
    Returns (Q node, Clip node or None, DQ node), not yet in the graph."""
    from onnx import helper
    s = gr.add_init(f'{name}/scale', np.float32(grid.scale))
    z = gr.add_init(f'{name}/zero_point', np.uint8(grid.zero_point))
    q = helper.make_node('QuantizeLinear', [x, s, z], [f'{name}/levels'],
                         name=f'{name}/act_quant')
    clip, levels = None, q.output[0]
    if grid.clip is not None:
        lo = gr.add_init(f'{name}/clip_lo', np.uint8(grid.clip[0]))
        hi = gr.add_init(f'{name}/clip_hi', np.uint8(grid.clip[1]))
        clip = helper.make_node('Clip', [levels, lo, hi], [f'{name}/levels_clipped'],
                                name=f'{name}/act_levels')
        levels = clip.output[0]
    dq = helper.make_node('DequantizeLinear', [levels, s, z],
                          [out_name or f'{name}/dequantized'], name=f'{name}/act_dequant')
    return q, clip, dq


def _replace_act_quantizer(gr, layer, call, conv, grid_kind):
    """Swap the layer's QuantizeLinear -> Clip -> DequantizeLinear (int8/uint8, zero
    point 0) for its uint8 form. Returns the _Act, or None for a float input."""
    prod = gr.producers()
    dq = prod.get(conv.input[0])
    if dq is None or dq.name != f'{layer}/act_dequant:{call}':
        return None
    levels = prod[dq.input[0]]
    if levels.op_type != 'Clip':
        raise ExportError(f'layer `{layer}`: signed binary activations (sign(x)) have no '
                          'QuantizeLinear form; the int8 deployment does not cover them '
                          '(deploy model_qcdq.onnx).')
    q = prod[levels.input[0]]
    alpha, beta = int(gr.value(levels.input[1])), int(gr.value(levels.input[2]))
    grid = uint8_grid(alpha, beta, gr.value(dq.input[1]), grid_kind)
    tag = f'{layer}:{call}'
    new_q, clip, new_dq = _uint8_quantizer(gr, tag, q.input[0], grid, dq.output[0])
    new_q.name, new_dq.name = f'{layer}/act_quant:{call}', f'{layer}/act_dequant:{call}'
    if clip is not None:
        clip.name = f'{layer}/act_levels:{call}'
    for old in (q, levels, dq):
        gr.remove(old)
    gr.g.node.extend([n for n in (new_q, clip, new_dq) if n is not None])
    return _Act(grid, new_q, clip)


def _merge_relu6(gr, act, quant):
    """Conv -> Clip(0, hi) -> exact-grid quantizer with zero point 0: round(min(x, hi)
    / d) = min(round(x / d), round(hi / d)) (rounding is monotone), so the float Clip
    becomes a Relu (which folds) and hi moves into the uint8 Clip. Returns True if
    merged."""
    from onnx import helper
    lo, hi = _clip_bounds(gr, act)
    g = quant.grid
    if lo != 0 or g.zero_point != 0 or g.clip is None and g.scale * 255 <= hi:
        return False
    top = int(np.round(np.float32(hi) / np.float32(g.scale)))
    if quant.clip is None:
        return False  # 8-bit exact grid: no uint8 Clip to carry the bound
    old_hi = int(gr.value(quant.clip.input[2]))
    gr.add_init(quant.clip.input[2], np.uint8(min(old_hi, top)))
    gr.relu6_merged[quant.clip.name] = float(hi)
    relu = helper.make_node('Relu', [act.input[0]], [act.output[0]], name=act.name)
    idx = list(gr.g.node).index(act)
    gr.remove(act)
    gr.g.node.insert(idx, relu)
    return True


def _activation_after(gr, tensor):
    """The Relu / Clip that is the only consumer of `tensor`, or None."""
    cons = gr.consumers()[tensor]
    if len(cons) == 1 and cons[0].op_type in ('Relu', 'Clip') and \
            tensor not in gr.graph_outputs():
        return cons[0]
    return None


def _needs_requant(gr, tensor, act, acts_by_q, grid_kind):
    """Whether `tensor` (a conv's / Add's output, after activation `act`) needs an
    8-bit QuantizeLinear of its own for onnxruntime to fuse its producer."""
    t = act.output[0] if act is not None else tensor
    cons = gr.consumers()[t]
    if t in gr.graph_outputs() or len(cons) != 1:
        return True
    quant = acts_by_q.get(cons[0].name)
    if quant is None:
        return True
    if quant.foldable_after(act, gr):
        return False
    if act is not None and act.op_type == 'Clip' and grid_kind == 'exact':
        return not _merge_relu6(gr, act, quant)
    return True


def _quantizers_reach(gr, tensor, acts_by_q):
    """(lo, hi): the union of the ranges of the activation quantizers that read
    `tensor`, if they (and Shape nodes) are its only consumers and it is no graph
    output; else None. Re-quantizing it wider would only coarsen their input."""
    if tensor in gr.graph_outputs():
        return None
    los, his = [], []
    for c in gr.consumers()[tensor]:
        if c.op_type == 'Shape':
            continue
        quant = acts_by_q.get(c.name)
        if quant is None:
            return None
        g = quant.grid
        lo, hi = g.clip if g.clip is not None else (0, 255)
        los.append((lo - g.zero_point) * g.scale)
        his.append((hi - g.zero_point) * g.scale)
    return (min(los), max(his)) if los else None


def _calibrate(proto, tensors, calib_inputs, input_name):
    """(min, max) of each tensor over `calib_inputs` (float32 arrays), running the
    graph in onnxruntime with optimizations off."""
    import copy

    import onnxruntime as ort
    from onnx import TensorProto, helper
    p = copy.deepcopy(proto)
    have = {o.name for o in p.graph.output}
    for t in tensors:
        if t not in have:
            p.graph.output.append(helper.make_tensor_value_info(t, TensorProto.FLOAT, None))
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.log_severity_level = 3
    sess = ort.InferenceSession(p.SerializeToString(), so,
                                providers=['CPUExecutionProvider'])
    lo = {t: np.inf for t in tensors}
    hi = {t: -np.inf for t in tensors}
    for x in calib_inputs:
        for t, v in zip(tensors, sess.run(list(tensors), {input_name: x})):
            lo[t] = min(lo[t], float(v.min()))
            hi[t] = max(hi[t], float(v.max()))
    return {t: (lo[t], hi[t]) for t in tensors}


def _range_grid(lo, hi, bounds=(-np.inf, np.inf)):
    """8-bit uint8 grid covering [min(lo, 0), max(hi, 0)] (zero exactly representable),
    zero point 0 for non-negative tensors (so a Relu before it folds). `bounds`: the
    (lo, hi) of a Clip activation (ReLU6) in front, which the range never exceeds (so
    that onnxruntime drops that Clip), and which is the range when the calibration
    images left the tensor constant."""
    from .int8_grid import Uint8Grid
    lo, hi = max(min(lo, 0.0), bounds[0]), min(max(hi, 0.0), bounds[1])
    if hi - lo <= 0 and np.isfinite(bounds).all():
        lo, hi = bounds
    if hi - lo <= 0:
        return Uint8Grid(1.0, 0)
    scale = float(np.float32((hi - lo) / 255))
    zp = int(np.clip(np.round(-lo / scale), 0, 255))
    return Uint8Grid(scale, zp)


def _insert_requant(gr, tensor, grid, name):
    """QuantizeLinear(grid) on `tensor`, one DequantizeLinear per consumer (a Shape
    reads the uint8 tensor itself). Returns the Q node."""
    from onnx import helper
    outputs = gr.graph_outputs()
    if tensor in outputs:  # keep the graph output's name on the dequantized tensor
        prod = gr.producers()[tensor]
        inner = f'{tensor}/float'
        prod.output[list(prod.output).index(tensor)] = inner
        _rename_uses(gr, tensor, inner)
        src = inner
    else:
        src = tensor
    cons = [c for c in gr.consumers()[src]]
    s = gr.add_init(f'{name}/scale', np.float32(grid.scale))
    z = gr.add_init(f'{name}/zero_point', np.uint8(grid.zero_point))
    q = helper.make_node('QuantizeLinear', [src, s, z], [f'{name}/levels'],
                         name=f'{name}/quant')
    gr.g.node.append(q)
    for k, c in enumerate(cons):
        if c.op_type == 'Shape':
            _rename_input(c, src, q.output[0])
            continue
        out = f'{name}/dequant:{k}'
        gr.g.node.append(helper.make_node('DequantizeLinear', [q.output[0], s, z], [out],
                                          name=f'{name}/dequant:{k}'))
        _rename_input(c, src, out)
    if tensor in outputs:
        gr.g.node.append(helper.make_node('DequantizeLinear', [q.output[0], s, z], [tensor],
                                          name=f'{name}/dequant:out'))
    return q


def _rename_input(node, old, new):
    for i, name in enumerate(node.input):
        if name == old:
            node.input[i] = new


def weight_refinement(levels, max_input):
    """The integer k by which a layer's weight levels are multiplied in the int8 file
    (its weight scale divided by k: the same weights).

    The int32 bias of a QLinearConv has the accumulator's step x_scale * w_scale; at 2-4
    bits both steps are coarse, and rounding the folded bias to that step shifted every
    output channel by up to half of it (a quarter of an output step at W3A3). k makes
    that step k times finer: as large as int8 allows (127 // max|level|: 31 at 3 bits),
    and small enough that onnxruntime's x86 kernels without VNNI, which add pairs of u8
    x s8 products in saturating int16, cannot overflow: 2 * max_input * k * max|level|
    <= 32767, max_input being the largest uint8 value the conv's input can hold (its
    uint8 Clip's top, else 255)."""
    m = max(int(np.abs(levels).max()) if levels.size else 0, 1)
    return max(1, min(127 // m, 32767 // (2 * max_input * m)))


def _quantize_weights_and_bias(gr, layer, call, conv, bias):
    """Per-channel (or per-tensor) int8 weight DequantizeLinear with zero point 0
    (levels times `weight_refinement`), and the int32 bias with scale x_scale *
    w_scale. Returns that refinement k."""
    from onnx import helper
    prod = gr.producers()
    wdq = prod[conv.input[1]]
    levels = wdq.input[0]
    if not levels.endswith(LEVELS_SUFFIX):
        raise ExportError(f'layer `{layer}`: weight is not an integer initializer.')
    w_scale = gr.value(wdq.input[1])  # per channel once a BatchNorm is folded in
    values = gr.value(levels)
    xdq = prod[conv.input[0]]
    if xdq.op_type != 'DequantizeLinear':
        raise ExportError(f'layer `{layer}`: its input is not dequantized (internal).')
    clip = prod.get(xdq.input[0])
    top = int(gr.value(clip.input[2])) if clip is not None and clip.op_type == 'Clip' \
        else 255
    k = weight_refinement(values, top)
    if k > 1:  # one refined copy per layer, shared by its calls (heads run per level)
        refined = f'{levels}_x{k}'
        if refined not in gr.inits:
            gr.add_init(refined, (values.astype(np.int16) * k).astype(np.int8))
        levels = refined
    w_scale = (np.float64(w_scale) / k).astype(np.float32)
    zp = np.zeros(w_scale.shape, np.int8) if w_scale.ndim else np.int8(0)
    tag = f'{layer}:{call}'
    s = gr.add_init(f'{tag}/weight_scale', w_scale)
    z = gr.add_init(f'{tag}/weight_zero_point', zp)
    attrs = {'axis': 0} if np.ndim(w_scale) else {}
    new = helper.make_node('DequantizeLinear', [levels, s, z], [wdq.output[0]],
                           name=wdq.name, **attrs)
    idx = list(gr.g.node).index(wdq)
    gr.remove(wdq)
    gr.g.node.insert(idx, new)
    if bias is None:
        return k
    x_scale = np.float32(gr.value(xdq.input[1]))
    b_scale = (x_scale * np.broadcast_to(w_scale, bias.shape)).astype(np.float32)
    b_levels = np.clip(np.round(bias / b_scale.astype(np.float64)), -2 ** 31, 2 ** 31 - 1)
    bl = gr.add_init(f'{tag}/bias_levels', b_levels.astype(np.int32))
    bs = gr.add_init(f'{tag}/bias_scale', b_scale)
    bz = gr.add_init(f'{tag}/bias_zero_point', np.zeros(bias.shape, np.int32))
    out = f'{tag}/bias'
    gr.g.node.append(helper.make_node('DequantizeLinear', [bl, bs, bz], [out],
                                      name=f'{layer}/bias_dequant:{call}', axis=0))
    if len(conv.input) > 2:
        conv.input[2] = out
    else:
        conv.input.append(out)
    return k


def _one_consumer_per_dq(gr):
    """onnxruntime's selectors want each DequantizeLinear to feed one node."""
    from onnx import helper
    cons = gr.consumers()
    for node in list(gr.g.node):
        if node.op_type != 'DequantizeLinear':
            continue
        users = cons[node.output[0]]
        for k, c in enumerate(users[1:], 1):
            out = f'{node.output[0]}/copy{k}'
            gr.g.node.append(_copy_node(node, out, k))
            _rename_input(c, node.output[0], out)


def _copy_node(node, out, k):
    import copy
    new = copy.deepcopy(node)
    new.output[0] = out
    new.name = f'{node.name}/copy{k}'
    return new


def _toposort(gr):
    nodes = list(gr.g.node)
    prod = {o: i for i, n in enumerate(nodes) for o in n.output}
    done, order, avail = set(), [], set(gr.inits) | {i.name for i in gr.g.input}
    avail.add('')
    pending = list(range(len(nodes)))
    while pending:
        rest = []
        for i in pending:
            if all(x in avail or x not in prod for x in nodes[i].input):
                order.append(nodes[i])
                avail.update(nodes[i].output)
                done.add(i)
            else:
                rest.append(i)
        if len(rest) == len(pending):
            raise ExportError('int8 graph has a cycle (internal).')
        pending = rest
    del gr.g.node[:]
    gr.g.node.extend(order)


def _drop_unused(gr):
    used = {i for n in gr.g.node for i in n.input} | gr.graph_outputs()
    keep = [i for i in gr.g.initializer if i.name in used]
    del gr.g.initializer[:]
    gr.g.initializer.extend(keep)
    del gr.g.value_info[:]


def to_int8(qcdq_proto, calib_inputs, grid='exact', input_name='input', int8_adds=False):
    """model_int8.onnx from model_qcdq.onnx (see the module docstring).

    Args:
        qcdq_proto (onnx.ModelProto): written by `export_network(..., 'qcdq')`.
        calib_inputs (list[np.ndarray]): preprocessed float32 (N, 3, H, W) batches for
            the ranges of the 8-bit re-quantizations (step 3).
        grid (str): 'exact' or 'subset' (int8_grid.py).
        input_name (str): the graph input.
        int8_adds (bool): re-quantize the outputs of residual / FPN Adds to 8 bits
            (onnxruntime runs them as QLinearAdd); False (default) keeps them float, as
            in the QAT model (the quantizers after them then round the float sums):
            on three trained W3A3 MobileNetV2 RetinaNets 0.0 to 0.4 AP from the
            fake-quant model against 0.4 to 1.1 with 8-bit Adds, at 0.7-1% latency.

    Returns:
        onnx.ModelProto.
    """
    import copy

    import onnx

    from .onnx_export import _set_metadata, metadata
    if grid not in GRIDS:
        raise ExportError(f'--int8-grid {grid!r}: use one of {GRIDS}.')
    if not calib_inputs:
        raise ExportError('the int8 graph needs calibration inputs (>= 1 image) for '
                          'its 8-bit re-quantization ranges.')
    proto = copy.deepcopy(qcdq_proto)
    gr = _Graph(proto)
    _inline_constants(gr)
    convs = _quant_convs(gr)
    biases = {}  # (layer, call) -> its float64 bias after the BatchNorm fold
    for layer, call, conv in convs:
        biases[(layer, call)] = _fold_batchnorm(gr, conv)
    acts = {}
    for layer, call, conv in convs:
        a = _replace_act_quantizer(gr, layer, call, conv, grid)
        if a is not None:
            acts[a.q.name] = a
    _toposort(gr)
    # where an 8-bit re-quantization goes (step 3)
    targets = []  # (tensor, kind) kind: 'range' (calibrated) or 'same' (input's grid)
    bounds = {}  # tensor -> bounds of the Clip activation that produced it
    for layer, call, conv in convs:
        act = _activation_after(gr, conv.output[0])
        if _needs_requant(gr, conv.output[0], act, acts, grid):
            t = act.output[0] if act is not None else conv.output[0]
            targets.append((t, 'range'))
            if act is not None and act.op_type == 'Clip':
                bounds[t] = _clip_bounds(gr, act)
            reach = _quantizers_reach(gr, t, acts)
            if reach is not None:  # no consumer sees values past the quantizers' ranges
                lo, hi = bounds.get(t, (-np.inf, np.inf))
                bounds[t] = (max(lo, reach[0]), min(hi, reach[1]))
        if gr.producers()[conv.input[0]].op_type != 'DequantizeLinear':
            targets.append((conv.input[0], 'range'))  # a float input (a_bits None)
    inits = gr.inits
    for node in list(gr.g.node):
        if int8_adds and node.op_type == 'Add' and not any(i in inits for i in node.input):
            act = _activation_after(gr, node.output[0])
            if _needs_requant(gr, node.output[0], act, acts, grid):
                targets.append((act.output[0] if act is not None else node.output[0],
                                'range'))
        elif node.op_type in _SAME_GRID_OPS:
            targets.append((node.output[0], 'same'))
    seen, uniq = set(), []
    for t, kind in targets:
        if t not in seen:
            seen.add(t)
            uniq.append((t, kind))
    ranges = _calibrate(proto, [t for t, k in uniq if k == 'range'], calib_inputs,
                        input_name)
    prod = gr.producers()
    for t, kind in uniq:
        if kind == 'range':
            _insert_requant(gr, t, _range_grid(*ranges[t], bounds.get(t, (-np.inf, np.inf))),
                            f'{t}/requant')
    # MaxPool / Resize: their output gets their input's scale and zero point, in graph
    # order (an op's input grid is known once its producer's re-quantization is in)
    _toposort(gr)
    for t, kind in uniq:
        if kind != 'same':
            continue
        prod = gr.producers()
        op = prod[t]
        src = prod.get(op.input[0])
        if src is None or src.op_type != 'DequantizeLinear':
            continue
        from .int8_grid import Uint8Grid
        g = Uint8Grid(float(gr.value(src.input[1])), int(gr.value(src.input[2])))
        _insert_requant(gr, t, g, f'{t}/requant')
    _toposort(gr)
    # node objects are copies once the node list is rebuilt: look them up again
    refinement = {}
    for layer, call, conv in _quant_convs(gr):
        refinement[layer] = _quantize_weights_and_bias(gr, layer, call, conv,
                                                       biases[(layer, call)])
    _one_consumer_per_dq(gr)
    _toposort(gr)
    _drop_unused(gr)
    meta = metadata(qcdq_proto)
    meta['mmtrs.variant'] = 'int8'
    meta[META_GRID] = grid
    meta[META_RELU6] = json.dumps(gr.relu6_merged)
    meta[META_REFINE] = json.dumps(refinement)
    _set_metadata(proto, meta)
    onnx.checker.check_model(proto)
    return proto


def quantized_conv_count(proto):
    """Conv nodes of quantized layers (`<layer>/Conv:<call>`) in an exported graph."""
    return sum(1 for n in proto.graph.node if n.op_type == 'Conv' and _QCONV.match(n.name))


def count_fusion(onnx_path, graph_opt='all', threads=1):
    """What onnxruntime made of the quantized convs, counted in the graph it writes
    after optimizing (SessionOptions.optimized_model_filepath): only a quantized conv
    can become QLinearConv, so quantized convs left as float = quantized - QLinearConv.

    Returns dict(quantized_convs, qlinear_conv, float_conv (all float Conv/FusedConv
    nodes left), unfused (quantized convs not fused), ops (op-type counts after))."""
    import os
    import tempfile
    from collections import Counter

    import onnx

    from .onnx_detector import make_session
    n_quant = quantized_conv_count(onnx.load(onnx_path))
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, 'optimized.onnx')
        make_session(onnx_path, graph_opt, threads, optimized_path=path)
        ops = Counter(n.op_type for n in onnx.load(path).graph.node)
    fused = ops.get('QLinearConv', 0) + ops.get('NhwcQLinearConv', 0)
    return dict(graph_opt=graph_opt, quantized_convs=n_quant, qlinear_conv=fused,
                float_conv=ops.get('Conv', 0) + ops.get('FusedConv', 0),
                unfused=n_quant - fused, ops=dict(ops.most_common()))


def read_int8_tensors(proto):
    """{layer: dict(levels=np.int8 array (the QAT levels: the stored int8 divided by
    `refinement`), w_scale (of those levels, per channel after BatchNorm folding),
    refinement, act_scale, act_zero_point, act_clip ([lo, hi] uint8 or None))} read
    back from model_int8.onnx (the first call of each layer)."""
    from onnx import numpy_helper

    from .onnx_export import metadata
    g = proto.graph
    inits = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    nodes = {n.name: n for n in g.node}
    refine = json.loads(metadata(proto).get(META_REFINE, '{}'))
    out = {}
    for node in g.node:
        name, _, role = node.name.rpartition('/')
        if role != 'weight_dequant:0':
            continue
        k = refine.get(name, 1)
        stored = inits[node.input[0]].astype(np.int16)
        if np.any(stored % k):
            raise ExportError(f'layer `{name}`: its int8 weights are not multiples of '
                              f'their refinement {k} (metadata {META_REFINE}).')
        row = dict(levels=(stored // k).astype(np.int8),
                   w_scale=inits[node.input[1]] * np.float32(k), refinement=k)
        q = nodes.get(f'{name}/act_quant:0')
        if q is not None:
            row.update(act_scale=np.float32(inits[q.input[1]]),
                       act_zero_point=int(inits[q.input[2]]), act_clip=None)
            clip = nodes.get(f'{name}/act_levels:0')
            if clip is not None:
                row['act_clip'] = [int(inits[clip.input[1]]), int(inits[clip.input[2]])]
        out[name] = row
    return out
