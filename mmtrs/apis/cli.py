"""What tools/train.py and tools/test.py share: MMDetection's common flags and the
config set-up they drive."""
import os
import os.path as osp
import sys

from mmengine.config import Config, DictAction


def add_common_args(parser):
    """--cfg-options, --launcher, --local_rank (as in MMDetection's tools)."""
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings in the config, key=value format')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def parse_common(parser, argv=None):
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def load_cfg(args):
    """Config with launcher, --cfg-options and the work dir (MMDetection's default
    ./work_dirs/<config name>) applied."""
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
    return cfg


def run_cli(main):
    """Run a tool's `main`. A mistake of the user's (a config value that cannot work, a
    checkpoint file that cannot or must not be loaded) ends the tool with one line
    naming the key or file and the fix, not a traceback from deep inside torch."""
    from mmtrs.apis.config_check import ConfigError
    from mmtrs.utils.safe_load import CheckpointLoadError
    try:
        return main()
    except (ConfigError, CheckpointLoadError) as e:
        sys.exit(f'{type(e).__name__}: {e}')
    finally:
        destroy_process_group()


def destroy_process_group():
    """Free the process group while the interpreter is still whole. MMEngine's Runner
    leaves it to exit, where gloo's worker threads (pt_gloo_runloop) are still running
    and, about one 2-process run in six here, abort the finished run ("terminate called
    without an active exception", SIGABRT; pytorch/pytorch#179291 describes the race).
    destroy_process_group() alone does not stop them: the DDP wrapper inside the
    runner's reference cycles still holds the group, so it is only freed, and its
    threads joined, once those cycles are collected."""
    import gc
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
        gc.collect()
