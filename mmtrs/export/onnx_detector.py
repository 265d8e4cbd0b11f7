"""`ONNXRuntimeDetector`: evaluate an exported network with onnxruntime through
MMDetection's own data pipeline, pre-processing and post-processing.

Only the network runs in onnxruntime. The data preprocessor (normalization, padding)
before it and the head's `predict_by_feat` (anchor decoding, score threshold, NMS) after
it are MMDetection's, built from the same config as the PyTorch model, so an AP
difference between the two paths can only come from the network.
"""
import json

import torch
from mmdet.models.detectors.base import BaseDetector
from mmdet.registry import MODELS

from .errors import ExportError
from .onnx_export import INPUT_NAME, META_GROUPS

#: onnxruntime graph optimization levels by name (--graph-opt)
GRAPH_OPT_LEVELS = ('disable', 'basic', 'extended', 'all')


def make_session(onnx_file, graph_opt='all', threads=None, optimized_path=None):
    """An onnxruntime CPU InferenceSession. `graph_opt`: one of GRAPH_OPT_LEVELS;
    `optimized_path`: where onnxruntime writes the graph it optimized (to count fused
    nodes)."""
    import onnxruntime as ort
    if graph_opt not in GRAPH_OPT_LEVELS:
        raise ExportError(f'graph_opt={graph_opt!r}: use one of {GRAPH_OPT_LEVELS}.')
    levels = dict(disable=ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
                  basic=ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
                  extended=ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
                  all=ort.GraphOptimizationLevel.ORT_ENABLE_ALL)
    so = ort.SessionOptions()
    so.graph_optimization_level = levels[graph_opt]
    if threads:
        so.intra_op_num_threads = int(threads)
        so.inter_op_num_threads = 1
    if optimized_path:
        so.optimized_model_filepath = str(optimized_path)
    so.log_severity_level = 3  # errors only
    return ort.InferenceSession(onnx_file if isinstance(onnx_file, (bytes, str))
                                else str(onnx_file), so,
                                providers=['CPUExecutionProvider'])


def output_groups(session):
    meta = session.get_modelmeta().custom_metadata_map
    if META_GROUPS not in meta:
        raise ExportError(f'the ONNX file has no `{META_GROUPS}` metadata: export it '
                          'with tools/export.py.')
    return json.loads(meta[META_GROUPS])


def run_network(session, groups, batch_inputs):
    """Run the ONNX network on a (N, C, H, W) tensor; returns MMDetection's
    mode='tensor' structure (tuple of lists of tensors) on the input's device."""
    arrays = session.run(None, {INPUT_NAME: batch_inputs.detach().cpu().float().numpy()})
    tensors = [torch.from_numpy(a).to(batch_inputs.device) for a in arrays]
    out, i = [], 0
    for n in groups:
        out.append(tensors[i:i + n])
        i += n
    return tuple(out)


@MODELS.register_module()
class ONNXRuntimeDetector(BaseDetector):
    """A single-stage detector whose network runs in onnxruntime (evaluation only).

    Args:
        onnx_file (str): a network written by tools/export.py.
        detector (dict): the model config it was exported from; its data_preprocessor
            and bbox_head (post-processing) are built from it.
        graph_opt (str): onnxruntime graph optimizations: 'disable', 'basic',
            'extended' or 'all'.
        threads (int | None): onnxruntime intra-op threads (None: its default).
    """

    def __init__(self, onnx_file, detector, graph_opt='all', threads=None, init_cfg=None):
        detector = dict(detector)
        super().__init__(data_preprocessor=detector.get('data_preprocessor'),
                         init_cfg=init_cfg)
        reference = MODELS.build(detector)
        if not hasattr(reference, 'bbox_head'):
            raise ExportError(f'{type(reference).__name__} has no bbox_head: '
                              'ONNXRuntimeDetector evaluates single-stage detectors.')
        self.bbox_head = reference.bbox_head  # its predict_by_feat only
        self.test_cfg = getattr(reference, 'test_cfg', None)
        self.onnx_file = onnx_file
        self.session = make_session(onnx_file, graph_opt, threads)
        self.groups = output_groups(self.session)

    def _forward(self, batch_inputs, batch_data_samples=None):
        return run_network(self.session, self.groups, batch_inputs)

    def predict(self, batch_inputs, batch_data_samples, rescale=True):
        outs = self._forward(batch_inputs)
        metas = [s.metainfo for s in batch_data_samples]
        results = self.bbox_head.predict_by_feat(*outs, batch_img_metas=metas,
                                                 rescale=rescale)
        return self.add_pred_to_datasample(batch_data_samples, results)

    def extract_feat(self, batch_inputs):
        raise NotImplementedError('the ONNX network exposes only the head outputs')

    def loss(self, batch_inputs, batch_data_samples):
        raise NotImplementedError('ONNXRuntimeDetector is for evaluation only')
