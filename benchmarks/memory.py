"""Peak resident memory (RSS) of training, QAT vs FP, measured in one invocation.

    python benchmarks/memory.py [--iters 10] [--batch 8] [--size 256]
                                [--variants fp,qat_sgd,qat_trs,torchao_qat,brevitas_qat]

Each variant (benchmarks/variants.py) trains `--iters` steps on the same synthetic batch
in a fresh child process, so one variant's allocations cannot hide inside another's
peak. The child reports its RSS after imports (the libraries: torch, mmdet, ...), after
building the model, and its peak (getrusage ru_maxrss). Printed: the peak and the
training part of it (peak - RSS after imports) as ratios to FP. Peak RSS depends on the
allocator but not on machine load, so one run per variant suffices; --repeats takes the
minimum over several. --allocator retain (default) trains as tools/train.py does on
glibc, freed memory kept between steps (env_cfg.retain_freed_memory); default: glibc's
own heap trimming.
"""
import argparse
import json
import os.path as osp
import resource
import subprocess
import sys

from variants import add_allocator_arg


def rss_mb():
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2 ** 20


def child(args):
    import copy
    imports_mb = rss_mb()
    from variants import apply_allocator, build_variant, synthetic_batch
    apply_allocator(args.allocator)
    imports_mb = max(imports_mb, rss_mb())
    model, wrapper = build_variant(args.child)
    data = synthetic_batch(args.batch, args.size)
    built_mb = rss_mb()
    for _ in range(args.iters):
        model.train_step(copy.copy(data), wrapper)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print('RESULT ' + json.dumps(dict(imports=imports_mb, built=built_mb, peak=peak_mb)))


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--iters', type=int, default=10)
    parser.add_argument('--batch', type=int, default=8)
    parser.add_argument('--size', type=int, default=256)
    parser.add_argument('--repeats', type=int, default=1)
    parser.add_argument('--variants', default='fp,qat_sgd,qat_trs,torchao_qat,brevitas_qat',
                        help='see benchmarks/variants.py')
    add_allocator_arg(parser)
    parser.add_argument('--child', help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)
    names = args.variants.split(',')
    res = {}
    for _ in range(args.repeats):
        for n in names:
            cmd = [sys.executable, osp.abspath(__file__), '--child', n, '--iters',
                   str(args.iters), '--batch', str(args.batch), '--size', str(args.size),
                   '--allocator', args.allocator]
            out = subprocess.run(cmd, capture_output=True, text=True)
            lines = [ln for ln in out.stdout.splitlines() if ln.startswith('RESULT ')]
            if out.returncode or not lines:
                sys.exit(f'{n} failed:\n{out.stderr[-3000:]}')
            r = json.loads(lines[-1][7:])
            if n not in res or r['peak'] < res[n]['peak']:
                res[n] = r
    print(f'peak RSS of training, batch {args.batch}, {args.size}px, {args.iters} iters '
          f'(fresh process per variant, min of {args.repeats}; allocator: {args.allocator})')
    print(f'  {"variant":<13}{"imports":>9}{"built":>9}{"peak":>9}  {"peak/FP":>8}'
          f'  {"(peak-imports)/FP":>18}')
    fp = res.get('fp', res.get('light_fp'))  # the FP variant of either variant set
    for n in names:
        r = res[n]
        ratio = f'{r["peak"] / fp["peak"]:.3f}x' if fp else ''
        train = (f'{(r["peak"] - r["imports"]) / (fp["peak"] - fp["imports"]):.3f}x'
                 if fp else '')
        print(f'  {n:<13}{r["imports"]:>7.0f}MB{r["built"]:>7.0f}MB{r["peak"]:>7.0f}MB'
              f'  {ratio:>8}  {train:>18}')


if __name__ == '__main__':
    main()
