"""Evaluate a checkpoint with mmtrs. Same main flags as MMDetection's tools/test.py.

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out results.pkl]
        [--cfg-options k=v ...] [--launcher {none,pytorch,slurm,mpi}]
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmtrs.apis.cli import add_common_args, load_cfg, parse_common, run_cli  # noqa: E402
from mmtrs.utils.allocator import apply_env_cfg  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Test (and eval) a detector (mmtrs)')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='the directory to save the evaluation metrics')
    parser.add_argument('--out', type=str,
                        help='dump predictions to a pickle file for offline evaluation')
    parser.add_argument('--calibrate', type=int, default=0, metavar='N',
                        help='set missing quantizer scales from N training batches '
                        'first (to evaluate an FP checkpoint under a quantized config)')
    add_common_args(parser)
    return parse_common(parser, argv)


def main(argv=None):
    args = parse_args(argv)
    import mmtrs  # noqa: F401
    from mmdet.utils import setup_cache_size_limit_of_dynamo
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner
    from mmtrs.apis import check_config
    setup_cache_size_limit_of_dynamo()
    cfg = load_cfg(args)
    cfg.load_from = args.checkpoint
    if args.calibrate:
        cfg.custom_hooks = list(cfg.get('custom_hooks', [])) + [
            dict(type='QuantizerCalibrationHook', num_batches=args.calibrate)]
    check_config(cfg, training=False)
    apply_env_cfg(cfg)  # glibc: keep freed memory between steps (mmtrs/utils/allocator.py)
    # a config with runner_type (the recipe's QuantRecipeRunner) as MMDetection builds it
    runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
    if args.out is not None:
        assert args.out.endswith(('.pkl', '.pickle')), 'The dump file must be a pkl file.'
        from mmdet.evaluation import DumpDetResults
        runner.test_evaluator.metrics.append(DumpDetResults(out_file_path=args.out))
    metrics = runner.test()
    return metrics


if __name__ == '__main__':
    run_cli(main)
