"""Configs that evaluate an exported ONNX network with MMDetection's test loop."""
import copy
import os.path as osp

from .errors import ExportError


def onnx_eval_cfg(cfg, onnx_file, graph_opt='all', threads=None):
    """A copy of `cfg` whose model is `ONNXRuntimeDetector` running `onnx_file`, with
    the config's own data pipeline, preprocessor, head post-processing and evaluator."""
    if not osp.isfile(onnx_file):
        raise ExportError(f'{onnx_file}: ONNX file does not exist (write it with '
                          'tools/export.py).')
    cfg = copy.deepcopy(cfg)
    imports = list((cfg.get('custom_imports') or {}).get('imports', ['mmtrs']))
    if 'mmtrs.export' not in imports:
        imports.append('mmtrs.export')
    cfg.custom_imports = dict(imports=imports, allow_failed_imports=False)
    cfg.model = dict(type='ONNXRuntimeDetector', onnx_file=onnx_file,
                     detector=cfg.model.to_dict() if hasattr(cfg.model, 'to_dict')
                     else dict(cfg.model), graph_opt=graph_opt, threads=threads)
    cfg.load_from = None
    cfg.resume = False
    return cfg
