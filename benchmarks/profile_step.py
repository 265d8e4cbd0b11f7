"""Where the QAT step's extra time goes: torch.profiler over training steps of FP and
QAT variants of the demo RetinaNet, self CPU time per step of each op side by side.

    python benchmarks/profile_step.py [--variants fp,qat_sgd] [--steps 3] [--batch 8]
                                      [--size 256] [--top 25]

Variants are those of benchmarks/variants.py, profiled one step each in turn (like
step_cost.py's round-robin, so load changes hit all alike).
The table lists, per op (autograd nodes included, e.g. `_QuantizeFnBackward`), the self
CPU time per step in ms and the number of calls per step in each variant, sorted by
the difference between the last variant and the first. Profiling adds its own per-op
cost: use it to see where time goes, and step_cost.py for the ratios.
"""
import argparse
import copy
from collections import defaultdict

import torch
from torch.profiler import ProfilerActivity, profile

from variants import build_variant, synthetic_batch


def profile_steps(model, wrapper, data, steps):
    """{op name: (self CPU microseconds per step, calls per step)}"""
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            model.train_step(copy.copy(data), wrapper)
    out = defaultdict(lambda: [0.0, 0])
    for ev in prof.key_averages():
        out[ev.key][0] += ev.self_cpu_time_total / steps
        out[ev.key][1] += ev.count / steps
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--variants', default='fp,qat_sgd')
    parser.add_argument('--steps', type=int, default=3)
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--batch', type=int, default=8)
    parser.add_argument('--size', type=int, default=256)
    parser.add_argument('--top', type=int, default=25)
    args = parser.parse_args()
    names = args.variants.split(',')
    data = synthetic_batch(args.batch, args.size)
    runs = {n: build_variant(n) for n in names}
    for _ in range(args.warmup):
        for model, wrapper in runs.values():
            model.train_step(copy.copy(data), wrapper)
    # one profiled step per variant in turn, so that load changes hit all alike
    prof = {n: defaultdict(lambda: [0.0, 0]) for n in names}
    for _ in range(args.steps):
        for n in names:
            for k, (t, c) in profile_steps(*runs[n], data, 1).items():
                prof[n][k][0] += t / args.steps
                prof[n][k][1] += c / args.steps
    keys = set().union(*(p.keys() for p in prof.values()))
    first, last = names[0], names[-1]
    rows = sorted(keys, key=lambda k: prof[last].get(k, (0, 0))[0] -
                  prof[first].get(k, (0, 0))[0], reverse=True)
    print(f'self CPU ms per step (calls per step), batch {args.batch}, {args.size}px, '
          f'{args.steps} profiled steps, torch threads {torch.get_num_threads()}')
    print(f'{"op":<44}' + ''.join(f'{n:>22}' for n in names))
    for k in rows[:args.top]:
        cells = ''
        for n in names:
            ms, calls = prof[n].get(k, (0, 0))
            cells += f'{ms / 1000:>12.2f} ({calls:>6.0f})'
        print(f'{k[:44]:<44}{cells}')
    totals = ''.join(f'{sum(v[0] for v in prof[n].values()) / 1000:>21.1f} ' for n in names)
    print(f'{"total self CPU (all ops)":<44}{totals}')


if __name__ == '__main__':
    main()
