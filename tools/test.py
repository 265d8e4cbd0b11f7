"""Evaluate a checkpoint with mmtrs. Same main flags as MMDetection's tools/test.py.

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out results.pkl]
        [--cfg-options k=v ...] [--launcher {none,pytorch,slurm,mpi}]
"""
import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmengine.config import Config, DictAction  # noqa: E402


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
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings in the config, key=value format')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def main(argv=None):
    args = parse_args(argv)
    import mmtrs  # noqa: F401
    from mmdet.utils import setup_cache_size_limit_of_dynamo
    from mmengine.runner import Runner
    from mmtrs.apis import check_config
    setup_cache_size_limit_of_dynamo()
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
    cfg.load_from = args.checkpoint
    if args.calibrate:
        cfg.custom_hooks = list(cfg.get('custom_hooks', [])) + [
            dict(type='QuantizerCalibrationHook', num_batches=args.calibrate)]
    check_config(cfg, training=False)
    runner = Runner.from_cfg(cfg)
    if args.out is not None:
        assert args.out.endswith(('.pkl', '.pickle')), 'The dump file must be a pkl file.'
        runner.test_evaluator.metrics.append(
            __import__('mmdet.evaluation', fromlist=['DumpDetResults']).DumpDetResults(
                out_file_path=args.out))
    metrics = runner.test()
    return metrics


if __name__ == '__main__':
    main()
