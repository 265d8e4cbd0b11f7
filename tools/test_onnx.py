"""Evaluate an exported ONNX network with onnxruntime on any dataset config (the sibling
of tools/test.py for files written by tools/export.py; docs/export.md).

    python tools/test_onnx.py CONFIG MODEL.onnx [--graph-opt {disable,basic,extended,all}]
        [--threads N] [--work-dir DIR] [--out results.pkl] [--cfg-options k=v ...]

The network runs in onnxruntime (CPU); the data pipeline, the data preprocessor and the
head's decoding + NMS are MMDetection's, built from CONFIG (the config the model was
exported from), and the metrics are the config's evaluator (COCO bbox AP for COCO
configs), printed as tools/test.py prints them.
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmtrs.apis.cli import add_common_args, load_cfg, parse_common  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Evaluate an ONNX export (mmtrs)')
    parser.add_argument('config', help='the config the model was exported from')
    parser.add_argument('onnx', help='model_int8.onnx, model_qcdq.onnx, model_int4.onnx or model_fp32.onnx')
    parser.add_argument('--graph-opt', default='all',
                        choices=['disable', 'basic', 'extended', 'all'],
                        help="onnxruntime graph optimization level (default 'all')")
    parser.add_argument('--threads', type=int, help='onnxruntime intra-op threads')
    parser.add_argument('--work-dir', help='the directory to save the evaluation metrics')
    parser.add_argument('--out', type=str,
                        help='dump predictions to a pickle file for offline evaluation')
    add_common_args(parser)
    return parse_common(parser, argv)


def main(argv=None):
    args = parse_args(argv)
    import mmtrs  # noqa: F401
    from mmengine.runner import Runner

    from mmtrs.apis import check_config
    from mmtrs.export.errors import ExportError
    from mmtrs.export.evaluation import onnx_eval_cfg
    try:
        cfg = onnx_eval_cfg(load_cfg(args), args.onnx, args.graph_opt, args.threads)
        check_config(cfg, training=False)
        runner = Runner.from_cfg(cfg)
    except ExportError as e:
        print(f'export error: {e}', file=sys.stderr)
        sys.exit(2)
    if args.out is not None:
        assert args.out.endswith(('.pkl', '.pickle')), 'The dump file must be a pkl file.'
        from mmdet.evaluation import DumpDetResults
        runner.test_evaluator.metrics.append(DumpDetResults(out_file_path=args.out))
    return runner.test()


if __name__ == '__main__':
    main()
