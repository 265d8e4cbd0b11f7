"""Training-step cost of the demo RetinaNet, measured side by side in one process.

    python benchmarks/step_cost.py [--iters 20] [--batch 8] [--size 256]
                                   [--light-variants ...] [--light-sizes 160,320]
                                   [--device cuda]

Variants (same batch, same data, interleaved round-robin so machine noise hits all
alike): FP, W4A4 QAT with plain SGD, W4A4 QAT with TR scheduling, and the same detector
made W4A4 QAT with torch.ao.quantization and with Brevitas (benchmarks/variants.py says
exactly how), trained with plain SGD. Prints the median step
time of each as a ratio to FP, the TR overhead (TRS step / plain QAT step), and the
time of the TR bookkeeping alone (transition counting, Eq. 5) relative to the TRS step:
counted in the weight quantizers' forward pass as trained, and in a pass of its own.
A second table does the same for the light model (MobileNetV2 0.5x RetinaNet,
--light-variants, at each of --light-sizes; `--light-variants ''` skips it).
Absolute times on shared machines mean little; the ratios are the result, and they
depend on the CPU: the output starts with the CPU model, the vector extensions ATen
dispatches to and the machine load.

--allocator retain (default) measures what tools/train.py runs with on glibc: freed
memory kept between steps (env_cfg.retain_freed_memory, mmtrs/utils/allocator.py);
--allocator default leaves glibc's heap trimming on, which costs every variant page
faults each step (minor faults per step are printed per variant).
"""
import argparse
import copy
import resource
import statistics
import time

import torch

from variants import (add_allocator_arg, apply_allocator, build_variant, cpu_description,
                      load_average, median_step_times, synchronize, synthetic_batch)


def minor_faults_per_step(model, wrapper, data):
    """Minor page faults of this process during one more training step."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    model.train_step(copy.copy(data), wrapper)
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


def step_peak_memory(model, wrapper, data, device):
    """Bytes of device memory one more training step takes at its peak above what was
    allocated before it (activations, gradients, temporaries)."""
    synchronize(device)
    before = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    model.train_step(copy.copy(data), wrapper)
    synchronize(device)
    return torch.cuda.max_memory_allocated(device) - before


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--iters', type=int, default=20)
    parser.add_argument('--warmup', type=int, default=3)
    parser.add_argument('--batch', type=int, default=8)
    parser.add_argument('--size', type=int, default=256)
    parser.add_argument('--variants', default='fp,qat_sgd,qat_trs,torchao_qat,brevitas_qat',
                        help='see benchmarks/variants.py')
    parser.add_argument('--light-variants', default='light_fp,light_qat_sgd,light_qat_trs',
                        help="the light model's table ('' to skip it)")
    parser.add_argument('--light-sizes', default='160,320',
                        help='image sizes of the light table, comma-separated')
    parser.add_argument('--device', default='cpu',
                        help="'cuda' measures the ATen path on a GPU (the fused quantizer "
                             'kernel is CPU-only); page faults are then replaced by the '
                             "step's peak device memory above what it held before")
    add_allocator_arg(parser)
    args = parser.parse_args()
    names = args.variants.split(',')
    allocator = apply_allocator(args.allocator)
    # the ratios depend on the CPU (vector extensions, cache, memory bandwidth), on the
    # allocator and on what else runs: all go on top of the table
    print(f'cpu: {cpu_description()}')
    if torch.device(args.device).type == 'cuda':
        props = torch.cuda.get_device_properties(args.device)
        print(f'device: {props.name} (compute capability {props.major}.{props.minor}, '
              f'{props.total_memory / 2 ** 30:.0f} GiB), torch {torch.__version__}, CUDA '
              f'{torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}, conv TF32 '
              f'{torch.backends.cudnn.allow_tf32}')
    print(allocator)
    print(f'load before (1, 5, 15 min): {load_average()}')
    print_table(names, 'fp', args, args.size)
    light = [n for n in args.light_variants.split(',') if n]
    if light:
        for size in args.light_sizes.split(','):
            print_table(light, 'light_fp', args, int(size))


def print_table(names, base_name, args, size):
    """Build `names`, step them round-robin at `size` px and print their ratios to
    `base_name` (if measured), page faults, and the TR overhead and bookkeeping."""
    data = synthetic_batch(args.batch, size)
    runs = {n: build_variant(n, args.device) for n in names}
    med = median_step_times(runs, data, args.iters, args.warmup, args.device)
    print(f'step cost on {args.device}, batch {args.batch}, {size}px, {args.iters} iters '
          f'(median; torch threads {torch.get_num_threads()}; load after: '
          f'{load_average()})')
    on_gpu = torch.device(args.device).type == 'cuda'
    extra = {n: step_peak_memory(*runs[n], data, args.device) if on_gpu else
             minor_faults_per_step(*runs[n], data) for n in names}
    base = med.get(base_name)
    for n in names:
        ratio = f'{med[n] / base:.3f}x FP' if base else ''
        if on_gpu:
            mem = f'{extra[n] / 2 ** 20:8.1f} MiB step peak'
            if base_name in extra:
                mem += f' ({extra[n] / extra[base_name]:.2f}x FP)'
        else:
            mem = f'{extra[n]:6d} page faults'
        print(f'  {n:<14} {med[n] * 1000:8.1f} ms  {ratio:<10}  {mem}')
    sgd = next((n for n in names if n.endswith('qat_sgd')), None)
    trs = next((n for n in names if n.endswith('qat_trs')), None)
    if sgd and trs:
        print(f'  TR scheduling overhead ({trs} / {sgd}): '
              f'{(med[trs] / med[sgd] - 1) * 100:+.2f}%')
    if trs:
        print_bookkeeping(runs[trs][1].counter, med[trs], args)


def print_bookkeeping(counter, trs_step, args):
    """The TR bookkeeping of Eq. 5 alone, as a share of a TRS step: where the weight
    quantizers' forward pass counts the transitions (fused CPU kernel, TransitionCounter
    in_forward), the extra time of that pass with the comparison over the same pass
    without it, plus collecting the counts; and, for comparison, a pass of its own
    (what other devices and plain optimizers' TransitionRateHook do)."""
    from mmtrs.quant import quantizer as qmod

    def timed(fn):
        t = []
        for _ in range(args.iters):
            synchronize(args.device)
            t0 = time.perf_counter()
            fn()
            synchronize(args.device)
            t.append(time.perf_counter() - t0)
        return statistics.median(t)

    def separate():
        for m, prev in zip(counter.layers, counter.prev):
            m.weight_quantizer.update_levels(m.weight, prev)

    n = int(counter.numels.sum())
    own = timed(separate)
    print(f'  TR bookkeeping in a pass of its own: {own * 1000:.2f} ms per step = '
          f'{own / trs_step * 100:.2f}% of a TRS step ({n} quantized weights)')
    if not (counter.in_forward and qmod._use_fused(counter.layers[0].weight)):
        return

    def weight_passes(with_levels):
        for m, prev in zip(counter.layers, counter.prev):
            q = m.weight_quantizer
            a, b, g = q.qrange
            with torch.no_grad():
                qmod._fused_quantize.quantize(m.weight, q.scale, [], a, b, g, q.use_sign,
                                              1.0, False, [], prev if with_levels else None)

    def collect():
        for m in counter.layers:
            m.weight_quantizer.transitions = 0
        counter.count()

    diffs = []
    for _ in range(5):  # the difference of two medians, itself a median of 5
        diffs.append(timed(lambda: weight_passes(True)) - timed(lambda: weight_passes(False)))
    fwd, col = statistics.median(diffs), timed(collect)
    print(f'  TR bookkeeping in the forward pass (as trained): {fwd * 1000:.2f} ms more in '
          f'the weight quantizers + {col * 1000:.2f} ms collecting = '
          f'{(fwd + col) / trs_step * 100:.2f}% of a TRS step')


if __name__ == '__main__':
    main()
