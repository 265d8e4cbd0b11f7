"""Training-step cost of the oscillation remedies relative to plain W4A4 QAT,
measured side by side in one process (demo RetinaNet, same batch, round-robin).

    python benchmarks/remedies_cost.py [--iters 20] [--batch 8] [--size 256]

Each variant is the plain-SGD QAT model (benchmarks/variants.py `qat_sgd`) plus one hook
of mmtrs/engine, driven as the Runner drives it: before_train once, then per step
before_train_iter, the train step (forward, loss incl. any regulariser, backward,
optimizer step) and after_train_iter. The hooks are placed at 50% of a 1000-iteration
run, so every rule is active (freezing thresholds on, lambda > 0), and the freezing
hooks' EMAs use m = 0.5 so that weights actually freeze within the benchmark's steps
(their restore pass and gradient mask then cost what they cost in a long run). Prints
the median step time of each as a ratio to plain QAT. The ratios depend on the CPU and
the load: both are printed first.
"""
import argparse
import copy
import statistics
import time
import types

import torch
from mmengine.logging import MessageHub, MMLogger
from mmengine.registry import HOOKS

from variants import build_variant, cpu_description, load_average, synthetic_batch

METHODS = {
    'qat_sgd': None,
    'tracking': dict(type='OscillationTrackingHook', momentum=0.01),
    'osc_freezing': dict(type='OscillationFreezingHook', momentum=0.5),
    'dampening': dict(type='OscillationDampeningHook', lambda_max=0.1),
    'lts_freezing': dict(type='LTSFreezingHook', momentum=0.5),
    'obr': dict(type='BinRegularizationHook', lambda_max=0.01),
}


def build(name, total_iters):
    model, wrapper = build_variant('qat_sgd')
    hook = None if METHODS[name] is None else HOOKS.build(copy.deepcopy(METHODS[name]))
    # the few Runner attributes the hooks read
    runner = types.SimpleNamespace(model=model, iter=total_iters // 2, max_iters=total_iters,
                                   message_hub=MessageHub.get_current_instance(),
                                   logger=MMLogger.get_current_instance(), _resume=False)
    if hook is not None:
        hook.before_train(runner)
    return model, wrapper, hook, runner


def step(model, wrapper, hook, runner, data):
    if hook is not None:
        hook.before_train_iter(runner, 0, data)
    model.train_step(copy.copy(data), wrapper)
    if hook is not None:
        hook.after_train_iter(runner, 0, data, None)


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--iters', type=int, default=20)
    parser.add_argument('--warmup', type=int, default=3)
    parser.add_argument('--batch', type=int, default=8)
    parser.add_argument('--size', type=int, default=256)
    parser.add_argument('--methods', default=','.join(METHODS))
    args = parser.parse_args()
    names = args.methods.split(',')
    print(f'cpu: {cpu_description()}')
    print(f'load before (1, 5, 15 min): {load_average()}')
    data = synthetic_batch(args.batch, args.size)
    runs = {n: build(n, 1000) for n in names}
    times = {n: [] for n in names}
    for it in range(args.warmup + args.iters):
        for n, run in runs.items():
            t0 = time.perf_counter()
            step(*run, data)
            if it >= args.warmup:
                times[n].append(time.perf_counter() - t0)
    med = {n: statistics.median(v) for n, v in times.items()}
    print(f'step cost, batch {args.batch}, {args.size}px, {args.iters} iters (median; '
          f'torch threads {torch.get_num_threads()}; load after: {load_average()})')
    base = med.get('qat_sgd')
    for n in names:
        ratio = f'{med[n] / base:.3f}x plain QAT' if base else ''
        print(f'  {n:<13} {med[n] * 1000:8.1f} ms  {ratio}')
        hook = runs[n][2]
        if getattr(hook, 'freezers', None):
            print(f'  {"":<13} frozen after the run: {hook.frozen_fraction() * 100:.1f}% '
                  'of the quantized weights')


if __name__ == '__main__':
    main()
