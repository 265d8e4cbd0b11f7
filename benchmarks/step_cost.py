"""Training-step cost of the demo RetinaNet, measured side by side in one process.

    python benchmarks/step_cost.py [--iters 20] [--batch 8] [--size 256]

Variants (same batch, same data, interleaved round-robin so machine noise hits all
alike): FP, W4A4 QAT with plain SGD, W4A4 QAT with TR scheduling, and (`torchao_qat`)
the FP detector made QAT the way a PyTorch user would: every Conv2d replaced by
torch.ao.nn.qat.Conv2d (per-channel 4-bit weight FakeQuantize) behind a 4-bit activation
FakeQuantize, with torch.ao's moving-average min/max observers, trained with plain SGD. Prints the median step
time of each as a ratio to FP, the TR overhead (TRS step / plain QAT step), and the
time of the TR bookkeeping alone (transition counting) relative to the QAT step.
Absolute times on shared machines mean little; the ratios are the result.
"""
import argparse
import copy
import os.path as osp
import statistics
import sys
import time

import torch

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import mmtrs  # noqa: E402,F401
from mmengine.config import Config  # noqa: E402
from mmengine.optim import build_optim_wrapper  # noqa: E402

CFG = {
    'fp': 'configs/demo/retinanet_r18_fp_demo.py',
    'qat_sgd': 'configs/demo/retinanet_r18_w4a4_sgd_demo.py',
    'qat_trs': 'configs/demo/retinanet_r18_w4a4_trs_demo.py',
}


def synthetic_batch(batch, size, seed=0):
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData
    g = torch.Generator().manual_seed(seed)
    inputs, samples = [], []
    for _ in range(batch):
        inputs.append(torch.randint(0, 255, (3, size, size), dtype=torch.uint8, generator=g))
        s = DetDataSample(metainfo=dict(img_shape=(size, size), pad_shape=(size, size),
                                        batch_input_shape=(size, size), scale_factor=(1, 1)))
        xy = torch.rand(4, 2, generator=g) * size * 0.6
        wh = torch.rand(4, 2, generator=g) * size * 0.35 + 8
        s.gt_instances = InstanceData(bboxes=torch.cat([xy, xy + wh], 1),
                                      labels=torch.randint(0, 5, (4,), generator=g))
        samples.append(s)
    return dict(inputs=inputs, data_samples=samples)


def torchao_qat(model):
    """Swap every nn.Conv2d for FakeQuantize(act) -> torch.ao.nn.qat.Conv2d (W4A4)."""
    import torch.ao.nn.qat as nnqat
    from torch.ao.quantization import (FakeQuantize, MovingAverageMinMaxObserver,
                                       MovingAveragePerChannelMinMaxObserver, QConfig)
    qconfig = QConfig(
        activation=FakeQuantize.with_args(observer=MovingAverageMinMaxObserver,
                                          quant_min=0, quant_max=15, dtype=torch.quint8),
        weight=FakeQuantize.with_args(observer=MovingAveragePerChannelMinMaxObserver,
                                      quant_min=-8, quant_max=7, dtype=torch.qint8,
                                      qscheme=torch.per_channel_symmetric))
    convs = [(n, m) for n, m in model.named_modules() if type(m) is torch.nn.Conv2d]
    for name, conv in convs:
        parent_name, _, attr = name.rpartition('.')
        parent = model.get_submodule(parent_name) if parent_name else model
        conv.qconfig = qconfig
        setattr(parent, attr, torch.nn.Sequential(qconfig.activation(),
                                                  nnqat.Conv2d.from_float(conv)))
    return model


def build_variant(name, root):
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    register_all_modules()
    cfg = Config.fromfile(osp.join(root, CFG['fp' if name == 'torchao_qat' else name]))
    torch.manual_seed(0)
    model = MODELS.build(copy.deepcopy(cfg.model))
    model.init_weights()
    if name == 'torchao_qat':
        torchao_qat(model)
    model.train()
    wrapper = build_optim_wrapper(model, copy.deepcopy(cfg.optim_wrapper))
    return model, wrapper


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--iters', type=int, default=20)
    parser.add_argument('--warmup', type=int, default=3)
    parser.add_argument('--batch', type=int, default=8)
    parser.add_argument('--size', type=int, default=256)
    parser.add_argument('--variants', default='fp,qat_sgd,qat_trs,torchao_qat')
    args = parser.parse_args()
    root = osp.dirname(osp.dirname(osp.abspath(__file__)))
    names = args.variants.split(',')
    data = synthetic_batch(args.batch, args.size)
    runs = {n: build_variant(n, root) for n in names}
    times = {n: [] for n in names}
    for it in range(args.warmup + args.iters):
        for n in names:  # round-robin: each variant sees the same machine state
            model, wrapper = runs[n]
            t0 = time.perf_counter()
            model.train_step(copy.copy(data), wrapper)
            if it >= args.warmup:
                times[n].append(time.perf_counter() - t0)
    med = {n: statistics.median(v) for n, v in times.items()}
    print(f'step cost, batch {args.batch}, {args.size}px, {args.iters} iters '
          f'(median; torch threads {torch.get_num_threads()})')
    base = med.get('fp')
    for n in names:
        ratio = f'{med[n] / base:.3f}x FP' if base else ''
        print(f'  {n:<12} {med[n] * 1000:8.1f} ms  {ratio}')
    if 'qat_sgd' in med and 'qat_trs' in med:
        print(f'  TR scheduling overhead (qat_trs / qat_sgd): '
              f'{(med["qat_trs"] / med["qat_sgd"] - 1) * 100:+.2f}%')
    if 'qat_trs' in runs:
        counter = runs['qat_trs'][1]._counter
        t = []
        for _ in range(args.iters):
            t0 = time.perf_counter()
            counter.count()
            t.append(time.perf_counter() - t0)
        book = statistics.median(t)
        print(f'  TR bookkeeping alone: {book * 1000:.2f} ms per step = '
              f'{book / med["qat_trs"] * 100:.2f}% of a TRS step '
              f'({int(counter.numels.sum())} quantized weights)')


if __name__ == '__main__':
    main()
