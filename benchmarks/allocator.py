"""Minor page faults per training step with glibc's own heap trimming and with
env_cfg.retain_freed_memory (mmtrs/utils/allocator.py), side by side.

    python benchmarks/allocator.py [--workload blocks] [--steps 6]
    python benchmarks/allocator.py --workload qat_sgd [--steps 6] [--batch 8] [--size 256]

Each setting runs the same steps in a fresh child process (mallopt changes a process
for good): `blocks` writes five 16 MiB tensors and frees them all at once, a training
step's bulk free of its activations in small (seconds); a variant of
benchmarks/variants.py (fp, qat_sgd, qat_trs, ...) trains on one synthetic batch. Printed:
the faults of every step under both settings and their sum after the first step, which
maps fresh pages either way. With trimming, glibc gives the freed top of its heap back
and the next step faults the pages in again (one fault per 4 KiB page) until its
adaptive thresholds have grown; with the thresholds fixed it keeps them. How many faults
that is depends on the glibc version, the kernel (transparent huge pages), the thread
count and the machine: this is a measurement of one machine, which is why the test
suite checks only that the settings are applied.
"""
import argparse
import json
import os.path as osp
import platform
import resource
import subprocess
import sys

SETTINGS = ('default', 'retain')


def minor_faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def blocks_step():
    import torch
    blocks = [torch.ones(4 * 2 ** 20) for _ in range(5)]  # 5 x 16 MiB, written
    del blocks


def child(args):
    """Faults of each step in this process, under args.child's setting (JSON line)."""
    import torch
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.child == 'retain':
        from mmtrs.utils.allocator import retain_freed_memory
        if not retain_freed_memory():
            sys.exit('retain_freed_memory() had no effect: the C library is not glibc')
    if args.workload == 'blocks':
        step = blocks_step
    else:
        import copy
        from variants import build_variant, synthetic_batch
        model, wrapper = build_variant(args.workload)
        data = synthetic_batch(args.batch, args.size)

        def step():
            model.train_step(copy.copy(data), wrapper)
    faults = []
    for _ in range(args.steps):
        before = minor_faults()
        step()
        faults.append(minor_faults() - before)
    print('RESULT ' + json.dumps(dict(faults=faults, threads=torch.get_num_threads())))


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--workload', default='blocks',
                        help='blocks, or a variant of benchmarks/variants.py')
    parser.add_argument('--steps', type=int, default=6)
    parser.add_argument('--batch', type=int, default=8, help='variants only')
    parser.add_argument('--size', type=int, default=256, help='variants only')
    parser.add_argument('--threads', type=int, default=0,
                        help="torch threads in each child (0: torch's default)")
    parser.add_argument('--child', choices=SETTINGS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)
    if platform.libc_ver()[0] != 'glibc':
        sys.exit(f'glibc only (this C library: {platform.libc_ver()[0] or "unknown"})')
    res = {}
    for setting in SETTINGS:
        cmd = [sys.executable, osp.abspath(__file__), '--child', setting, '--workload',
               args.workload, '--steps', str(args.steps), '--batch', str(args.batch),
               '--size', str(args.size), '--threads', str(args.threads)]
        out = subprocess.run(cmd, capture_output=True, text=True)
        lines = [ln for ln in out.stdout.splitlines() if ln.startswith('RESULT ')]
        if out.returncode or not lines:
            sys.exit(f'{setting} failed:\n{out.stderr[-3000:]}')
        res[setting] = json.loads(lines[-1][len('RESULT '):])
    what = 'five 16 MiB blocks written and freed' if args.workload == 'blocks' else \
        f'{args.workload} training step, batch {args.batch}, {args.size} px'
    print(f'minor page faults per step ({what}; glibc {platform.libc_ver()[1]}; torch '
          f'threads {res["default"]["threads"]}; a fresh process per setting)')
    print(f'  {"step":>4}  {"default":>9}  {"retain":>9}')
    for i in range(args.steps):
        print(f'  {i + 1:>4}  ' + '  '.join(f'{res[s]["faults"][i]:>9d}' for s in SETTINGS))
    later = {s: sum(res[s]['faults'][1:]) for s in SETTINGS}
    ratio = (f'{later["retain"] / later["default"]:.3f}x' if later['default'] else 'n/a')
    print(f'  {"2-" + str(args.steps):>4}  {later["default"]:>9d}  {later["retain"]:>9d}'
          f'  (retain / default: {ratio})')


if __name__ == '__main__':
    main()
