"""Cost of the first conv (the stem) alone, forward + backward, by how its image input is
treated, interleaved round-robin in one process:

    python benchmarks/stem_cost.py [--iters 30] [--batch 8] [--size 256]

  fp       the FP stem conv (nn.Conv2d 3->32, 7x7, stride 2, as in the demo's ResNet-18)
  fixed    QConv2d W8A8, input scale fixed from the data preprocessor (the default)
  learned  QConv2d W8A8, input scale learned (LSQ): the backward pass must also compute
           the gradient w.r.t. the quantized image, for the input scale's gradient
  float    QConv2d W8, float input (first_layer a_bits=None)

Each step: forward on a normalized random 8-bit image batch, then backward of the sum of
the output. Prints the median time of each and its ratio to FP.
"""
import argparse
import statistics
import time

import torch

from variants import cpu_description, load_average
from mmtrs.quant import QConv2d
from mmtrs.quant.input_scale import fix_input_scale

MEAN = torch.tensor([123.675, 116.28, 103.53]).view(1, 3, 1, 1)   # the demo's preprocessor
STD = torch.tensor([58.395, 57.12, 57.375]).view(1, 3, 1, 1)


class _Preprocessor(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer('mean', MEAN.view(3, 1, 1))
        self.register_buffer('std', STD.view(3, 1, 1))


def build(kind, conv):
    if kind == 'fp':
        return conv
    q = QConv2d.from_conv(conv, w_bits=8, a_bits=None if kind == 'float' else 8,
                          a_signed='auto', init_mult=12.0, name='backbone.conv1')
    if kind == 'fixed':
        fix_input_scale(q.act_quantizer, _Preprocessor())
    return q


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--iters', type=int, default=30)
    parser.add_argument('--warmup', type=int, default=3)
    parser.add_argument('--batch', type=int, default=8)
    parser.add_argument('--size', type=int, default=256)
    args = parser.parse_args()
    print(f'cpu: {cpu_description()}')
    print(f'load before (1, 5, 15 min): {load_average()}')
    torch.manual_seed(0)
    pixels = torch.randint(0, 256, (args.batch, 3, args.size, args.size)).float()
    x = (pixels - MEAN) / STD
    kinds = ['fp', 'fixed', 'learned', 'float']
    convs = {}
    for k in kinds:
        torch.manual_seed(0)
        convs[k] = build(k, torch.nn.Conv2d(3, 32, 7, stride=2, padding=3, bias=False))
        convs[k].train()
    times = {k: [] for k in kinds}
    for it in range(args.warmup + args.iters):
        for k in kinds:
            m = convs[k]
            m.zero_grad(set_to_none=True)
            t0 = time.perf_counter()
            m(x).sum().backward()
            if it >= args.warmup:
                times[k].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f'stem conv forward + backward, batch {args.batch}, {args.size}px, {args.iters} '
          f'iters (median; torch threads {torch.get_num_threads()}; load after: '
          f'{load_average()})')
    for k in kinds:
        print(f'  {k:<8} {med[k] * 1000:8.2f} ms  {med[k] / med["fp"]:.2f}x FP')


if __name__ == '__main__':
    main()
