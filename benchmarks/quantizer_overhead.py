"""How much of the quantizers' time is their C++ autograd node (kernels included) and
how much the Python around it: wall time per training step inside the node's forward
(`_fused_quantize.quantize`, called from Python) and inside `Quantizer.forward` (the
module, the node included), and the node's backward (self CPU time of its autograd node
in torch.profiler, a separate set of steps), for a QAT variant, beside the FP and QAT
step times.

    python benchmarks/quantizer_overhead.py [--variant light_qat_sgd] [--fp light_fp]
                                            [--size 160] [--batch 8] [--steps 6]

The timers wrap the functions in this process only (a few microseconds per call of
their own, included in the figures); the FP and QAT steps alternate, so both see the
same load. Per-call costs dominate where tensors are small (the light model, small
images, batch 1); the kernels' share grows with the image.
"""
import argparse
import copy
import time
from collections import defaultdict

from torch.profiler import ProfilerActivity, profile

from mmtrs.quant import quantizer as quantizer_module
from variants import build_variant, cpu_description, load_average, synthetic_batch

TOTALS = defaultdict(float)


def timed(key, fn):
    def call(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            TOTALS[key] += time.perf_counter() - t0
    return call


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--variant', default='light_qat_sgd')
    p.add_argument('--fp', default='light_fp')
    p.add_argument('--size', type=int, default=160)
    p.add_argument('--batch', type=int, default=8)
    p.add_argument('--steps', type=int, default=6)
    args = p.parse_args()
    if not quantizer_module.fused_kernel_available():
        raise SystemExit('the fused kernel is not built: pip install -e .')
    print(f'cpu: {cpu_description()}; load before: {load_average()}')
    data = synthetic_batch(args.batch, args.size)
    fp, qat = build_variant(args.fp), build_variant(args.variant)
    for model, wrapper in (fp, qat, fp, qat):  # warm-up, quantizer init
        model.train_step(copy.copy(data), wrapper)
    kernels = quantizer_module._fused_quantize
    quantizer_module._fused_quantize = type('TimedKernels', (), dict(
        quantize=staticmethod(timed('C++ node forward (kernel included)',
                                    kernels.quantize))))
    quantizer_module.Quantizer.forward = timed('Quantizer.forward (module)',
                                               quantizer_module.Quantizer.forward)
    step = {'fp': 0.0, 'qat': 0.0}
    for _ in range(args.steps):
        for key, (model, wrapper) in (('fp', fp), ('qat', qat)):
            before = dict(TOTALS)
            t0 = time.perf_counter()
            model.train_step(copy.copy(data), wrapper)
            step[key] += time.perf_counter() - t0
            if key == 'fp':  # FP has no quantizer: nothing may have been timed
                assert TOTALS == before
    n = args.steps
    fp_ms, q_ms = step['fp'] / n * 1e3, step['qat'] / n * 1e3
    print(f'{args.variant} vs {args.fp}, batch {args.batch}, {args.size} px, mean of {n} '
          f'steps (load after: {load_average()})')
    print(f'  FP step {fp_ms:.1f} ms, QAT step {q_ms:.1f} ms ({q_ms / fp_ms:.3f}x), '
          f'difference {q_ms - fp_ms:.1f} ms')
    for key, total in TOTALS.items():
        print(f'  {key:<40} {total / n * 1e3:7.1f} ms per step')
    module = TOTALS['Quantizer.forward (module)'] - TOTALS['C++ node forward (kernel included)']
    print(f'  Python in Quantizer.forward around the node: {module / n * 1e3:.1f} ms per step')
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(n):
            qat[0].train_step(copy.copy(data), qat[1])
    backward = sum(e.self_cpu_time_total for e in prof.key_averages()
                   if 'QuantizeNode' in e.key)
    print(f'  C++ node backward (kernel included, profiled steps): {backward / n / 1e3:.1f} '
          'ms per step')


if __name__ == '__main__':
    main()
