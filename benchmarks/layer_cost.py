"""Where QAT's extra step time goes, layer by layer: every conv of an FP variant and the
same conv of its QAT variant, timed forward + backward on the input it sees in a
training step, side by side (round-robin) in one process, summed by layer kind
(depthwise, pointwise, other; mmtrs.quant.geometry.layer_kind).

    python benchmarks/layer_cost.py [--fp light_fp] [--qat light_qat_sgd]
                                    [--size 160] [--batch 8] [--reps 5] [--top 8]

Prints, per kind, the FP and QAT milliseconds per step and their difference, the
whole-step difference beside it (the rest: norm layers, activations, loss, optimizer
step, measured as whole step minus the convs), and the layers that cost QAT most.
Each layer runs on the inputs it received in one training step of the QAT model, every
call of it (RetinaNet's head convs run once per FPN level); FP layers get the same
tensors, so only the layer's own cost is compared. The backward pass computes the
input's and the weight's gradients, as in training.
"""
import argparse
import copy
import statistics
import time
from collections import defaultdict

import torch

from mmtrs.quant.geometry import LAYER_KINDS, layer_kind
from mmtrs.quant.layers import QUANTIZED_LAYERS
from variants import (build_variant, cpu_description, load_average, median_step_times,
                      synthetic_batch)


def record_inputs(model, wrapper, data, types):
    """{module name: [its input at each call]} over one training step, for every
    module of `types`."""
    seen, handles = defaultdict(list), []
    for name, m in model.named_modules():
        if type(m) in types:
            handles.append(m.register_forward_pre_hook(
                lambda mod, args, name=name: seen[name].append(args[0].detach().clone())))
    model.train_step(copy.copy(data), wrapper)
    for h in handles:
        h.remove()
    return seen


def fwd_bwd(layer, xs):
    """Forward and backward of `layer` on a fresh leaf copy of each input in `xs`;
    returns the seconds taken, copies excluded."""
    xs = [x.clone().requires_grad_(True) for x in xs]
    t0 = time.perf_counter()
    for x in xs:
        layer(x).sum().backward()
    return time.perf_counter() - t0


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--fp', default='light_fp')
    p.add_argument('--qat', default='light_qat_sgd')
    p.add_argument('--size', type=int, default=160)
    p.add_argument('--batch', type=int, default=8)
    p.add_argument('--reps', type=int, default=5)
    p.add_argument('--top', type=int, default=8)
    args = p.parse_args()
    print(f'cpu: {cpu_description()}; torch threads {torch.get_num_threads()}')
    print(f'load before (1, 5, 15 min): {load_average()}')
    data = synthetic_batch(args.batch, args.size)
    runs = {n: build_variant(n) for n in (args.fp, args.qat)}
    steps = median_step_times(runs, data, args.reps, 2)
    inputs = record_inputs(*runs[args.qat], data, QUANTIZED_LAYERS)
    fp_layers = dict(runs[args.fp][0].named_modules())
    q_layers = dict(runs[args.qat][0].named_modules())
    times = defaultdict(list)  # (name, 'fp' | 'qat') -> seconds
    for _ in range(args.reps):
        for name, xs in inputs.items():
            for which, layer in (('fp', fp_layers[name]), ('qat', q_layers[name])):
                times[name, which].append(fwd_bwd(layer, xs))
    for _, (model, _) in runs.items():
        model.zero_grad(set_to_none=True)
    per_kind = {k: [0.0, 0.0, 0] for k in LAYER_KINDS}
    rows = []
    for name in inputs:
        fp, q = (statistics.median(times[name, w]) for w in ('fp', 'qat'))
        kind = layer_kind(q_layers[name])
        per_kind[kind][0] += fp
        per_kind[kind][1] += q
        per_kind[kind][2] += 1
        rows.append((q - fp, name, kind, fp, q, tuple(inputs[name][0].shape),
                     len(inputs[name])))
    fp_step, q_step = steps[args.fp], steps[args.qat]
    conv_fp = sum(v[0] for v in per_kind.values())
    conv_q = sum(v[1] for v in per_kind.values())
    print(f'{args.qat} vs {args.fp}, batch {args.batch}, {args.size} px, median of '
          f'{args.reps} (load after: {load_average()})')
    print(f'{"part":<28}{"layers":>7}{"FP ms":>10}{"QAT ms":>10}{"QAT-FP ms":>11}'
          f'{"x FP":>7}')
    for kind, (fp, q, n) in per_kind.items():
        print(f'{kind + " convs":<28}{n:>7}{fp * 1e3:>10.1f}{q * 1e3:>10.1f}'
              f'{(q - fp) * 1e3:>11.1f}{q / fp if fp else 0:>7.2f}')
    rest_fp, rest_q = fp_step - conv_fp, q_step - conv_q
    print(f'{"rest of the step":<28}{"":>7}{rest_fp * 1e3:>10.1f}{rest_q * 1e3:>10.1f}'
          f'{(rest_q - rest_fp) * 1e3:>11.1f}{rest_q / rest_fp if rest_fp else 0:>7.2f}')
    print(f'{"whole training step":<28}{"":>7}{fp_step * 1e3:>10.1f}{q_step * 1e3:>10.1f}'
          f'{(q_step - fp_step) * 1e3:>11.1f}{q_step / fp_step:>7.2f}')
    print('layers that cost QAT most (fwd+bwd ms, all calls of a step):')
    for diff, name, kind, fp, q, shape, calls in sorted(rows, reverse=True)[:args.top]:
        print(f'  {name:<44} {kind:<10} input {shape} x{calls}: FP {fp * 1e3:.2f}, '
              f'QAT {q * 1e3:.2f} (+{diff * 1e3:.2f})')


if __name__ == '__main__':
    main()
