"""How the cost grows with work, measured side by side in one run.

    python benchmarks/scaling.py [--iters 5] [--plot docs/results/scaling.png]

1. Training-step time vs image size (batch fixed) and vs batch size (size fixed), for
   the FP demo RetinaNet and our W4A4 TRS QAT (benchmarks/variants.py); both variants
   interleaved at every point so load changes hit them alike. Printed: median times and
   the QAT/FP ratio per point.
2. TR bookkeeping time (TransitionCounter.count: discretize every controlled weight,
   compare with the previous levels, Eq. 5) vs the number of quantized weights, on
   stacks of 3x3 QConv2d layers of growing width. Printed: median time, ns per weight
   and a least-squares line (expected: linear, small intercept).
"""
import argparse
import statistics
import time

import torch

from variants import (add_allocator_arg, apply_allocator, build_variant, median_step_times,
                      synthetic_batch)


def step_times(points, variants, iters, warmup):
    """{(batch, size): {variant: median seconds}}; each point builds fresh models."""
    out = {}
    for batch, size in points:
        data = synthetic_batch(batch, size)
        runs = {n: build_variant(n) for n in variants}
        out[(batch, size)] = median_step_times(runs, data, iters, warmup)
        print(f'  batch {batch:>2} {size:>3}px: ' + '  '.join(
            f'{n} {t * 1000:7.1f} ms' for n, t in out[(batch, size)].items())
            + f'  ratio {out[(batch, size)][variants[1]] / out[(batch, size)][variants[0]]:.3f}',
            flush=True)
    return out


def bookkeeping_times(widths, layers_per_stack, reps):
    """[(number of weights, median seconds of TransitionCounter.count())]."""
    from mmtrs.trs import TransitionCounter
    from mmtrs.quant import QConv2d
    out = []
    for c in widths:
        torch.manual_seed(0)
        layers = []
        for i in range(layers_per_stack):
            q = QConv2d(c, c, 3, w_bits=4, a_bits=None)
            q.weight_quantizer.init_from(q.weight.detach())
            layers.append((f'conv{i}', q))
        counter = TransitionCounter(layers)
        counter.count()
        t = []
        for _ in range(reps):
            with torch.no_grad():  # move some weights, as an optimizer step would
                for _, q in layers:
                    q.weight.add_(torch.randn_like(q.weight), alpha=1e-3)
            t0 = time.perf_counter()
            counter.count()
            t.append(time.perf_counter() - t0)
        n = int(counter.numels.sum())
        out.append((n, statistics.median(t)))
        print(f'  {n:>10} weights: {out[-1][1] * 1000:7.2f} ms  '
              f'{out[-1][1] / n * 1e9:5.2f} ns/weight', flush=True)
    return out


def linear_fit(xs, ys):
    mx, my = statistics.mean(xs), statistics.mean(ys)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    a = my - b * mx
    ss_res = sum((y - a - b * x) ** 2 for x, y in zip(xs, ys))
    ss_tot = sum((y - my) ** 2 for y in ys)
    return a, b, 1 - ss_res / ss_tot


def plot(size_res, batch_res, book, fit, variants, out):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.2))
    for ax, res, idx, xlabel in ((axes[0], size_res, 1, 'image size (px)'),
                                 (axes[1], batch_res, 0, 'batch size')):
        keys = sorted(res)
        xs = [k[idx] for k in keys]
        for n in variants:
            ax.plot(xs, [res[k][n] * 1000 for k in keys], 'o-', label=n)
        ax2 = ax.twinx()
        ax2.plot(xs, [res[k][variants[1]] / res[k][variants[0]] for k in keys], 'k--',
                 label=f'{variants[1]} / {variants[0]}')
        ax2.set_ylabel('ratio')
        ax2.set_ylim(0.8, 2.0)
        ax.set_xlabel(xlabel)
        ax.set_ylabel('training step (ms, median)')
        ax.legend(loc='upper left', fontsize=8)
        ax2.legend(loc='lower right', fontsize=8)
    axes[0].set_title(f'step time vs image size (batch {sorted(size_res)[0][0]})')
    axes[1].set_title(f'step time vs batch (size {sorted(batch_res)[0][1]} px)')
    ns = [n / 1e6 for n, _ in book]
    axes[2].plot(ns, [t * 1000 for _, t in book], 'o', label='measured')
    a, b, r2 = fit
    axes[2].plot(ns, [(a + b * n * 1e6) * 1000 for n in ns], '-',
                 label=f'{a * 1000:.2f} ms + {b * 1e9:.2f} ns/weight (R2 {r2:.3f})')
    axes[2].set_xlabel('quantized weights (M)')
    axes[2].set_ylabel('TransitionCounter.count (ms, median)')
    axes[2].set_title('TR bookkeeping vs number of weights')
    axes[2].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--iters', type=int, default=5)
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--sizes', default='128,192,256,320')
    parser.add_argument('--size-batch', type=int, default=4)
    parser.add_argument('--batches', default='1,2,4,8')
    parser.add_argument('--batch-size-px', type=int, default=192)
    parser.add_argument('--widths', default='64,128,192,256,384,512',
                        help='channels of the bookkeeping stacks (8 3x3 convs each)')
    parser.add_argument('--variants', default='fp,qat_trs')
    parser.add_argument('--plot', default=None, help='write the three panels to this PNG')
    add_allocator_arg(parser)
    args = parser.parse_args()
    print(apply_allocator(args.allocator))
    variants = args.variants.split(',')
    if len(variants) != 2:
        parser.error('--variants takes two: the baseline and the one to compare')
    print(f'step time vs image size, batch {args.size_batch}, {args.iters} iters per '
          f'point (median; torch threads {torch.get_num_threads()})')
    size_res = step_times([(args.size_batch, int(s)) for s in args.sizes.split(',')],
                          variants, args.iters, args.warmup)
    print(f'step time vs batch size, {args.batch_size_px}px')
    batch_res = step_times([(int(b), args.batch_size_px) for b in args.batches.split(',')],
                           variants, args.iters, args.warmup)
    print('TR bookkeeping vs number of quantized weights (8 layers of 3x3 convs, 30 reps)')
    book = bookkeeping_times([int(w) for w in args.widths.split(',')], 8, 30)
    fit = linear_fit([n for n, _ in book], [t for _, t in book])
    print(f'  least squares: {fit[0] * 1000:.3f} ms + {fit[1] * 1e9:.3f} ns per weight, '
          f'R^2 {fit[2]:.4f}')
    if args.plot:
        plot(size_res, batch_res, book, fit, variants, args.plot)
        print(f'  plot: {args.plot}')


if __name__ == '__main__':
    main()
