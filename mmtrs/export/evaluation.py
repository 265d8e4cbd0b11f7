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


def evaluate_ap(cfg, checkpoint, onnx_files, work_dir, threads=None):
    """Unrounded COCO AP (pycocotools, no rounding to 0.1) of the PyTorch model of `cfg`
    with `checkpoint` (skipped if None) and of each ONNX network in `onnx_files`
    ({label: path}), through the same MMDetection test loop. Returns {label: metrics}
    with 'pytorch' for the PyTorch model."""
    from mmengine.runner import Runner

    from .verify import UnroundedCocoAP
    out = {}
    ann = cfg.test_evaluator['ann_file']
    labels = (['pytorch'] if checkpoint else []) + list(onnx_files)
    for label in labels:
        c = copy.deepcopy(cfg)
        if label == 'pytorch':
            c.load_from = checkpoint
        else:
            c = onnx_eval_cfg(c, onnx_files[label], 'all', threads)
        c.work_dir = osp.join(work_dir, label)
        c.launcher = 'none'
        runner = Runner.from_cfg(c)
        metric = UnroundedCocoAP(ann)
        # the test loop gives its metrics the data set's class names when it is built
        metric.dataset_meta = runner.test_loop.dataloader.dataset.metainfo
        runner.test_evaluator.metrics.append(metric)
        metrics = runner.test()
        out[label] = {k: v for k, v in metrics.items() if k.startswith(('unrounded',
                                                                         'coco/bbox_mAP'))}
    return out
