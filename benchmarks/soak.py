"""Soak run: TR-scheduled training several times longer than the demo's QAT stage.

    python benchmarks/soak.py [--iters 1500] [--size 128] [--work-dir work_dirs/soak]

Trains the demo W4A4 TRS config (from scratch, on a generated 128 px set) for `--iters`
iterations (5x the demo's 300 by default) and reports: whether the TALR stayed finite and
non-negative at every step, the resident memory (RSS) over the run (growth after the
first 10% of iterations), and every warning emitted during training (Python warnings
and WARNING lines of the MMEngine log). Exits non-zero when a check fails.
"""
import argparse
import glob
import math
import os.path as osp
import resource
import sys
import warnings

import mmtrs  # noqa: F401 (registers the quantized models and the TRS wrapper)
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.runner import Runner

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def rss_mb():
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2 ** 20


class SoakProbe(Hook):
    priority = 'LOWEST'

    def __init__(self):
        self.talr, self.rss = [], []

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        self.talr.append(runner.optim_wrapper.talr)
        if runner.iter % 25 == 0:
            self.rss.append((runner.iter, rss_mb()))


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--iters', type=int, default=1500)
    parser.add_argument('--size', type=int, default=128)
    parser.add_argument('--work-dir', default='work_dirs/soak')
    args = parser.parse_args()
    from mmtrs.datasets import make_synthetic_coco
    data = osp.join(args.work_dir, 'data')
    if not osp.isfile(osp.join(data, 'annotations', 'instances_val.json')):
        make_synthetic_coco(data, num_train=64, num_val=16, img_size=args.size, seed=3,
                            progress=False)
    cfg = Config.fromfile(osp.join(ROOT, 'configs/demo/retinanet_r18_w4a4_trs_demo.py'))
    root = data + '/'
    n = args.iters
    cfg.merge_from_dict({
        'work_dir': args.work_dir, 'load_from': None,
        'train_dataloader.dataset.data_root': root, 'val_dataloader.dataset.data_root': root,
        'test_dataloader.dataset.data_root': root,
        'val_evaluator.ann_file': root + 'annotations/instances_val.json',
        'test_evaluator.ann_file': root + 'annotations/instances_test.json',
        'train_dataloader.batch_size': 4,
        'train_dataloader.dataset.pipeline.2.scale': (args.size, args.size),
        'val_dataloader.dataset.pipeline.1.scale': (args.size, args.size),
        'train_cfg.max_iters': n, 'train_cfg.val_interval': n,
        'param_scheduler.0.T_max': n, 'param_scheduler.0.end': n,
        'param_scheduler.1.T_max': n, 'param_scheduler.1.end': n,
        'default_hooks.checkpoint.interval': n, 'default_hooks.logger.interval': 100,
    })
    probe = SoakProbe()
    runner = Runner.from_cfg(cfg)
    runner.register_hook(probe)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        runner.train()
    train_warnings = [str(w.message) for w in caught
                      if 'deprecated' not in str(w.message).lower()]
    logs = glob.glob(osp.join(args.work_dir, '*', '*.log'))
    log_warnings = [ln.strip() for f in logs[-1:] for ln in open(f)
                    if ' - WARNING - ' in ln]
    finite = all(math.isfinite(u) and u >= 0 for u in probe.talr)
    start = [r for i, r in probe.rss if i >= n // 10][0]
    end = probe.rss[-1][1]
    print(f'\nsoak: {n} iterations, TALR finite and >= 0 at every step: {finite} '
          f'(min {min(probe.talr):.3e}, max {max(probe.talr):.3e})')
    print(f'RSS after 10% of the run {start:.0f} MB, at the end {end:.0f} MB '
          f'({(end / start - 1) * 100:+.1f}%)')
    print(f'warnings during training: {len(train_warnings)} Python '
          f'(deprecations of torch/mmcv internals excluded), {len(log_warnings)} in the log')
    for w in (train_warnings + log_warnings)[:10]:
        print('  ', w[:200])
    ok = finite and end <= start * 1.10
    sys.exit(0 if ok else 1)


if __name__ == '__main__':
    main()
