"""What the deployable export buys on CPU: file sizes and onnxruntime latency.

    python benchmarks/export_cost.py [--demo-ckpt CKPT] [--runs 100] [--warmup 10]
        [--size 256] [--threads 1] [--skip-r50] [--out docs/results/export_cost.txt]

Sizes: for the demo W4A4 RetinaNet-R18 (CKPT, or quantizer scales set by one forward on
random data: sizes do not depend on training) and the COCO RetinaNet-R50 W4A4 (built
from configs/retinanet_r50_w4a4_sgd.py, untrained, scales set the same way), the files
tools/export.py writes: FP32 ONNX (same network, float weights), QCDQ ONNX (int8
containers), INT4 ONNX and the packed checkpoint, with ratios to FP32.
Latency (demo model, batch 1, --size px, --threads threads): PyTorch FP32 (the same
network with float weights, mode='tensor'), PyTorch fake-quant (the QAT model), and
onnxruntime (graph optimizations all) on the FP32, QCDQ and INT4 graphs. Variants run
round-robin, one run each per round, so machine load hits all alike; median and p90
over --runs rounds after --warmup rounds. One thread by default: on the shared 2-core
machine, PyTorch with 2 OpenMP threads beside other busy processes took 4.7 s per
demo forward instead of 0.14 s (OpenMP threads waiting on each other), which would
measure the machine's load, not the runtimes.
"""
import argparse
import copy
import datetime
import os
import os.path as osp
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)

DEMO_CFG = 'configs/demo/retinanet_r18_w4a4_sgd_demo.py'
R50_CFG = 'configs/retinanet_r50_w4a4_sgd.py'


def quantized_model(config, ckpt=None):
    from mmengine.config import Config

    from mmtrs.export import build_detector, load_qat_checkpoint
    model = build_detector(Config.fromfile(osp.join(ROOT, config)))
    if ckpt:
        return load_qat_checkpoint(model, ckpt, config)
    torch.manual_seed(0)
    model.train()
    model(torch.randn(2, 3, 128, 128), mode='tensor')  # sets every quantizer's scale
    return model.eval()


def export_all(model, out, size):
    import onnx

    from mmtrs.export import export_network, save_packed, to_int4
    paths = {k: osp.join(out, f'model_{k}.onnx') for k in ('fp32', 'qcdq', 'int4')}
    export_network(model, paths['fp32'], 'fp32', (1, 3, size, size))
    proto = export_network(model, paths['qcdq'], 'qcdq', (1, 3, size, size))
    onnx.save(to_int4(proto), paths['int4'])
    paths['packed'] = save_packed(model, osp.join(out, 'model_packed.pth'))[0]
    return paths


def size_table(name, paths):
    fp = osp.getsize(paths['fp32'])
    rows = [f'{name}: file sizes']
    labels = dict(fp32='FP32 ONNX', qcdq='QCDQ ONNX (int8 containers)',
                  int4='INT4 ONNX (<=4-bit layers)', packed='packed checkpoint')
    for k in ('fp32', 'qcdq', 'int4', 'packed'):
        b = osp.getsize(paths[k])
        rows.append(f'  {labels[k]:30s} {b / 1e6:9.3f} MB   {b / fp:6.3f}x FP32')
    return rows


def float_network(model):
    from mmtrs.export import collect_quant_layers
    from mmtrs.export.qdq_modules import FloatLayer
    net = copy.deepcopy(model).eval()
    for layer in collect_quant_layers(net):
        net.set_submodule(layer.name, FloatLayer(layer))
    return net


def latency(model, paths, size, threads, runs, warmup):
    from mmtrs.export import make_session
    torch.set_num_threads(threads)
    x = torch.randn(1, 3, size, size)
    fp_net = float_network(model)
    sessions = {k: make_session(paths[k], 'all', threads) for k in ('fp32', 'qcdq', 'int4')}
    feed = {'input': x.numpy()}

    def torch_run(net):
        def run():
            with torch.no_grad():
                net(x, mode='tensor')
        return run

    variants = {'PyTorch FP32': torch_run(fp_net),
                'PyTorch fake-quant (QAT model)': torch_run(model),
                'onnxruntime FP32': lambda: sessions['fp32'].run(None, feed),
                'onnxruntime QCDQ (int8 containers)': lambda: sessions['qcdq'].run(None, feed),
                'onnxruntime INT4': lambda: sessions['int4'].run(None, feed)}
    times = {k: [] for k in variants}
    for i in range(warmup + runs):
        for k, fn in variants.items():
            t = time.perf_counter()
            fn()
            if i >= warmup:
                times[k].append(time.perf_counter() - t)
    base = np.median(times['PyTorch FP32'])
    rows = [f'latency, batch 1, {size}x{size}, {threads} threads, {runs} runs after '
            f'{warmup} warm-up (round-robin):',
            f'  {"variant":36s} {"median":>9s} {"p90":>9s}   median / PyTorch FP32']
    for k, t in times.items():
        med, p90 = np.median(t), np.percentile(t, 90)
        rows.append(f'  {k:36s} {1e3 * med:7.1f}ms {1e3 * p90:7.1f}ms   {med / base:6.2f}x')
    return rows


def header(argv):
    commit = subprocess.run(['git', 'describe', '--always', '--dirty'], cwd=ROOT,
                            capture_output=True, text=True).stdout.strip() or 'none'
    with open('/proc/loadavg') as f:
        load = ' '.join(f.read().split()[:3])
    return [f'# command: python benchmarks/export_cost.py {" ".join(argv)}'.rstrip(),
            f'# date: {datetime.datetime.utcnow():%Y-%m-%dT%H:%MZ}  commit: {commit}',
            f'# machine: {os.cpu_count()} cores, load before: {load}']


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--demo-ckpt', help='a trained demo W4A4 checkpoint (optional)')
    p.add_argument('--runs', type=int, default=100)
    p.add_argument('--warmup', type=int, default=10)
    p.add_argument('--size', type=int, default=256)
    p.add_argument('--threads', type=int, default=1)
    p.add_argument('--skip-r50', action='store_true')
    p.add_argument('--out', help='also write the table to this file')
    args = p.parse_args(argv)
    lines = header(argv)
    with tempfile.TemporaryDirectory() as tmp:
        demo = quantized_model(DEMO_CFG, args.demo_ckpt)
        os.makedirs(osp.join(tmp, 'demo'))
        demo_paths = export_all(demo, osp.join(tmp, 'demo'), args.size)
        lines += size_table(f'demo W4A4 RetinaNet-R18 ({DEMO_CFG})', demo_paths)
        if not args.skip_r50:
            r50 = quantized_model(R50_CFG)
            os.makedirs(osp.join(tmp, 'r50'))
            lines += size_table(f'COCO W4A4 RetinaNet-R50 ({R50_CFG}, untrained)',
                                export_all(r50, osp.join(tmp, 'r50'), args.size))
            del r50
        lines += ['demo model ' + row if i == 0 else row for i, row in enumerate(
            latency(demo, demo_paths, args.size, args.threads, args.runs, args.warmup))]
    print('\n'.join(lines))
    if args.out:
        with open(args.out, 'w') as f:
            f.write('\n'.join(lines) + '\n')


if __name__ == '__main__':
    main()
