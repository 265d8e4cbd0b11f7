"""Train a detector with mmtrs. Same flags as MMDetection's tools/train.py.

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp]
        [--auto-scale-lr] [--cfg-options k=v ...] [--launcher {none,pytorch,slurm,mpi}]

Multi-process (gloo on CPU, NCCL on GPUs):
    torchrun --nproc_per_node=2 tools/train.py CONFIG --launcher pytorch
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmtrs.apis.cli import add_common_args, load_cfg, parse_common, run_cli  # noqa: E402
from mmtrs.utils.allocator import apply_env_cfg  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train a detector (mmtrs)')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument('--amp', action='store_true', default=False,
                        help='enable automatic-mixed-precision training')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='enable automatically scaling LR')
    parser.add_argument('--resume', nargs='?', type=str, const='auto',
                        help='resume from the given checkpoint; without a path, from the '
                        'latest checkpoint in the work dir')
    add_common_args(parser)
    return parse_common(parser, argv)


def build_cfg(args):
    from mmtrs.apis import check_config
    cfg = load_cfg(args)
    if args.amp:
        wrapper = cfg.optim_wrapper.get('type', 'OptimWrapper')
        # Keep TR scheduling under AMP: its AMP twin, not the plain AmpOptimWrapper.
        amp_type = {'OptimWrapper': 'AmpOptimWrapper', 'TRSOptimWrapper': 'AmpTRSOptimWrapper'}
        if wrapper in amp_type.values():
            print(f'AMP training is already enabled in your config ({wrapper}).')
        elif wrapper not in amp_type:
            raise ValueError(f'--amp: no AMP variant known for optim_wrapper.type={wrapper!r}')
        else:
            cfg.optim_wrapper.type = amp_type[wrapper]
            cfg.optim_wrapper.loss_scale = 'dynamic'
    if args.auto_scale_lr:
        if 'auto_scale_lr' in cfg and 'base_batch_size' in cfg.auto_scale_lr:
            cfg.auto_scale_lr.enable = True
        else:
            raise RuntimeError('Can not find "auto_scale_lr" or '
                               '"auto_scale_lr.base_batch_size" in your configuration file.')
    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume
    check_config(cfg, training=True)
    return cfg


def setup_cpu_distributed(cfg):
    """torchrun on a machine without CUDA: gloo process group and a CPU DDP wrapper.

    MMEngine's pytorch launcher assumes a GPU per process (torch.cuda.set_device, DDP
    device_ids=[local_rank]); it skips its own init when a process group exists, and
    DDP on CPU needs device_ids=None.
    """
    import torch
    import torch.distributed as torch_dist
    if cfg.launcher != 'pytorch' or torch.cuda.is_available():
        return
    if not torch_dist.is_initialized():
        torch_dist.init_process_group(backend='gloo')
    wrapper = cfg.get('model_wrapper_cfg') or dict(type='MMDistributedDataParallel')
    wrapper.update(device_ids=None)
    wrapper.setdefault('broadcast_buffers', False)
    wrapper.setdefault('find_unused_parameters', cfg.get('find_unused_parameters', False))
    cfg.model_wrapper_cfg = wrapper


def main(argv=None):
    args = parse_args(argv)
    import mmtrs  # noqa: F401  (registers mmtrs modules)
    from mmdet.utils import setup_cache_size_limit_of_dynamo
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner
    setup_cache_size_limit_of_dynamo()
    cfg = build_cfg(args)
    setup_cpu_distributed(cfg)
    apply_env_cfg(cfg)  # glibc: keep freed memory between steps (mmtrs/utils/allocator.py)
    runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
    runner.train()


if __name__ == '__main__':
    run_cli(main)
