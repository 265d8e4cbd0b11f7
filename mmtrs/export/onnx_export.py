"""The detector network (MMDetection's `mode='tensor'`: raw per-level head maps) as ONNX.

Variants (same graph, same node names):
  * 'qcdq': every quantized layer as integer weight initializers (int8 containers) +
    DequantizeLinear, and QuantizeLinear -> Clip -> DequantizeLinear on its input
    (qdq_modules.py); opset 17 by default (13 is the minimum: per-tensor QDQ, integer
    Clip). Runs in stock onnxruntime on CPU.
  * 'int4': the 'qcdq' graph converted to opset 21 (onnx.version_converter) with the
    weight initializers of layers of at most 4 bits stored as INT4 (two per byte on
    disk); 8-bit layers (first/last layers by default) keep int8. A size artifact.
  * 'fp32': the same network with float latent weights and no quantization (the
    float reference for size and latency).

Decoding and NMS are not in the graph: they stay in MMDetection (`bbox_head.
predict_by_feat`), shared by the PyTorch and the ONNX path (onnx_detector.py).
After export, every node of a quantized layer is named `<layer>/<role>:<call>` (role
act_quant, act_levels, act_dequant, weight_dequant, Conv/Gemm/MatMul; call = the k-th
use of the layer, e.g. the 5 FPN levels through a shared head conv), and the weight
levels initializer `<layer>.weight_levels`; tools/verify_export.py relies on that.
"""
import copy
import json
import warnings
from collections import Counter

import torch
from torch import nn

from .errors import ExportError
from .layers import collect_quant_layers
from .qdq_modules import LEVELS_SUFFIX, FloatLayer, QDQLayer

INPUT_NAME = 'input'
#: metadata keys of exported files
META_GROUPS = 'mmtrs.output_groups'
META_LAYERS = 'mmtrs.quant_layers'
META_VARIANT = 'mmtrs.variant'


class TensorModeNet(nn.Module):
    """detector(x, mode='tensor') with its nested outputs flattened (ONNX outputs are a
    flat list); `groups` records the nesting, e.g. [5, 5] = (cls maps, reg maps)."""

    def __init__(self, detector):
        super().__init__()
        self.detector = detector
        self.groups = None

    def forward(self, x):
        outs = self.detector(x, mode='tensor')
        flat, groups = [], []
        for group in outs:
            group = list(group) if isinstance(group, (list, tuple)) else [group]
            flat += group
            groups.append(len(group))
        self.groups = groups
        return tuple(flat)


def check_exportable_detector(detector):
    from mmdet.models.detectors import SingleStageDetector
    if not isinstance(detector, SingleStageDetector):
        raise ExportError(
            f'model {type(detector).__name__} is not a single-stage detector: the ONNX '
            "export covers MMDetection's mode='tensor' of single-stage detectors (raw "
            'head maps; decoding and NMS stay in MMDetection).')


def _swap_layers(model, layers, make):
    for layer in layers:
        model.set_submodule(layer.name, make(layer))


def output_names(groups):
    return [f'head{i}_level{j}' for i, n in enumerate(groups) for j in range(n)]


def export_network(model, path, variant='qcdq', input_shape=(1, 3, 256, 256), opset=17):
    """Write `model` (a quantized single-stage detector with loaded scales; for
    variant 'fp32' also a float one) to `path`. Returns the onnx ModelProto written."""
    import onnx
    if variant not in ('qcdq', 'fp32'):
        raise ValueError(f'variant {variant!r}: use qcdq or fp32 (int4: to_int4)')
    if variant == 'qcdq' and opset < 13:
        raise ExportError(f'--opset {opset}: the QDQ graph needs opset 13 or later.')
    check_exportable_detector(model)
    net = copy.deepcopy(model).eval()
    if variant == 'fp32' and not _has_quant_layers(model):
        layers = []  # a float detector (the FP model of a QAT run) as it is
    else:
        layers = collect_quant_layers(model)
        _swap_layers(net, collect_quant_layers(net),
                     QDQLayer if variant == 'qcdq' else FloatLayer)
    wrapper = TensorModeNet(net).eval()
    dummy = torch.randn(input_shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        wrapper(dummy)
    names = output_names(wrapper.groups)
    dynamic = {INPUT_NAME: {0: 'batch', 2: 'height', 3: 'width'}}
    dynamic.update({n: {0: 'batch', 2: f'{n}_h', 3: f'{n}_w'} for n in names})
    with warnings.catch_warnings():
        # the TorchScript-based exporter is deprecated in favour of the dynamo one, which
        # needs onnxscript and a translation of every custom op; this one takes the QDQ
        # symbolics of qdq_modules.py as they are
        warnings.simplefilter('ignore')
        torch.onnx.export(wrapper, (dummy,), path, dynamo=False, opset_version=opset,
                          input_names=[INPUT_NAME], output_names=names,
                          dynamic_axes=dynamic, do_constant_folding=True)
    proto = onnx.load(path)
    _strip_prefix(proto.graph, 'detector.')
    meta = {META_GROUPS: json.dumps(wrapper.groups), META_VARIANT: variant,
            META_LAYERS: json.dumps({lay.name: lay.manifest() for lay in layers})}
    if variant == 'qcdq':
        calls = annotate_quant_nodes(proto.graph)
        absent = [lay.name for lay in layers if lay.name not in calls]
        if absent:
            raise ExportError(f'quantized layer `{absent[0]}` is not in the traced network '
                              "(not used by mode='tensor'?): nothing to export for it.")
    _set_metadata(proto, meta)
    onnx.checker.check_model(proto)
    onnx.save(proto, path)
    return proto


def _has_quant_layers(model):
    from .layers import SUPPORTED_TYPES
    return any(type(m) in SUPPORTED_TYPES for m in model.modules())


def _set_metadata(proto, meta):
    keep = [p for p in proto.metadata_props if p.key not in meta]
    del proto.metadata_props[:]
    proto.metadata_props.extend(keep)
    for k, v in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, v


def metadata(proto):
    return {p.key: p.value for p in proto.metadata_props}


def _rename_tensor(graph, old, new):
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name == old:
                node.input[i] = new
        for i, name in enumerate(node.output):
            if name == old:
                node.output[i] = new
    for vi in list(graph.input) + list(graph.output) + list(graph.value_info):
        if vi.name == old:
            vi.name = new


def _strip_prefix(graph, prefix):
    for init in graph.initializer:
        if init.name.startswith(prefix):
            new = init.name[len(prefix):]
            _rename_tensor(graph, init.name, new)
            init.name = new


def _producers(graph):
    return {out: node for node in graph.node for out in node.output}


def annotate_quant_nodes(graph):
    """Name the nodes of each quantized layer `<layer>/<role>:<call>`; returns
    {layer: number of calls}. A layer is found from its weight-levels initializer,
    through DequantizeLinear (and a Transpose for MatMul) into a Conv/Gemm/MatMul."""
    prod = _producers(graph)
    calls = Counter()
    for node in graph.node:
        if node.op_type not in ('Conv', 'Gemm', 'MatMul') or len(node.input) < 2:
            continue
        w = prod.get(node.input[1])
        while w is not None and w.op_type == 'Transpose':
            w = prod.get(w.input[0])
        if w is None or w.op_type != 'DequantizeLinear' or \
                not w.input[0].endswith(LEVELS_SUFFIX):
            continue
        layer = w.input[0][:-len(LEVELS_SUFFIX)]
        k = calls[layer]
        calls[layer] += 1
        node.name = f'{layer}/{node.op_type}:{k}'
        w.name = f'{layer}/weight_dequant:{k}'
        dq = prod.get(node.input[0])
        if dq is None or dq.op_type != 'DequantizeLinear':
            continue  # float input (a_bits=None)
        dq.name = f'{layer}/act_dequant:{k}'
        levels = prod[dq.input[0]]
        levels.name = f'{layer}/act_levels:{k}'
        quant = prod.get(levels.input[0])
        if quant is not None:
            quant.name = f'{layer}/act_quant:{k}'
    return dict(calls)


def _const_value(graph, name):
    from onnx import numpy_helper
    for init in graph.initializer:
        if init.name == name:
            return numpy_helper.to_array(init)
    for node in graph.node:
        if node.op_type == 'Constant' and node.output[0] == name:
            return numpy_helper.to_array(node.attribute[0].t)
    raise KeyError(name)


def read_quant_tensors(proto):
    """{layer: dict(levels=np.int8 array, w_dq_scale, [a_dq_scale, a_range])} read back
    from an exported graph (INT4 initializers widened to int8)."""
    import numpy as np
    from onnx import numpy_helper
    g = proto.graph
    inits = {i.name: i for i in g.initializer}
    out = {}
    for node in g.node:
        name, _, role = node.name.rpartition('/')
        if role == 'weight_dequant:0':
            out.setdefault(name, {})
            out[name]['levels'] = numpy_helper.to_array(inits[node.input[0]]).astype(np.int8)
            out[name]['w_dq_scale'] = np.float32(_const_value(g, node.input[1]))
        elif role == 'act_levels:0':
            out.setdefault(name, {})
            if node.op_type == 'Clip':
                out[name]['a_range'] = [int(_const_value(g, node.input[1])),
                                        int(_const_value(g, node.input[2]))]
            else:  # sign: Where(x >= 0, +1, -1)
                out[name]['a_range'] = [int(_const_value(g, node.input[2])),
                                        int(_const_value(g, node.input[1]))]
        elif role == 'act_dequant:0':
            out.setdefault(name, {})
            out[name]['a_dq_scale'] = np.float32(_const_value(g, node.input[1]))
    return out


def to_int4(proto, max_bits=4):
    """The 'qcdq' graph at opset 21 with INT4 weight initializers for every layer of at
    most `max_bits` (<= 4) bits; other layers keep int8. Returns a new ModelProto."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper, version_converter
    bits = {name: row['w_bits'] for name, row in
            json.loads(metadata(proto)[META_LAYERS]).items()}
    if not any(b <= max_bits for b in bits.values()):
        raise ExportError(f'no quantized layer has <= {max_bits} weight bits: an int4 '
                          'graph would equal the int8 one.')
    new = version_converter.convert_version(proto, 21)
    for i, init in enumerate(new.graph.initializer):
        if not init.name.endswith(LEVELS_SUFFIX):
            continue
        if bits[init.name[:-len(LEVELS_SUFFIX)]] > max_bits:
            continue
        levels = numpy_helper.to_array(init)
        packed = helper.make_tensor(init.name, TensorProto.INT4, levels.shape,
                                    levels.flatten().tolist())
        new.graph.initializer[i].CopyFrom(packed)
    meta = metadata(proto)
    meta[META_VARIANT] = 'int4'
    _set_metadata(new, meta)
    onnx.checker.check_model(new)
    return new
