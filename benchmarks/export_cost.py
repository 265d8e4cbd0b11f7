"""What the deployable export buys on CPU: latency and file sizes, side by side.

    python benchmarks/export_cost.py [--demo-ckpt CKPT] [--light-ckpt CKPT] [--runs 20]
        [--warmup 3] [--r50-runs 2] [--batches 1 8] [--threads 1 2] [--skip-r50]
        [--profile] [--out docs/results/export_cost.md]

Models: the demo W4A4 RetinaNet-R18 at 256 px, the light W4A4 RetinaNet-MobileNetV2 at
160 and 320 px, the COCO W4A4 RetinaNet-R50 at 800x1344 (latency only, --r50-runs
rounds). Without a checkpoint a model's quantizer scales are set by one training-mode
forward on random data (latency and sizes do not depend on training).

Variants, per model, input size, batch (--batches) and thread count (--threads):
  * PyTorch FP32: the same network with float weights (mode='tensor');
  * onnxruntime FP32: model_fp32.onnx (tools/export.py --fp32);
  * onnxruntime quantize_static (the anchor): onnxruntime's own post-training
    quantization of model_fp32.onnx (QDQ, uint8 activations, int8 per-channel
    weights, MinMax calibration on --calib random images);
  * onnxruntime int8 (ours): model_int8.onnx (QAT levels, QLinearConv), its 8-bit
    re-quantizations calibrated on the same images; 'int8 subset': the same with
    --int8-grid subset (no uint8 Clip nodes).
onnxruntime runs with all graph optimizations, in a child process per thread count whose
sessions share one global pool of --threads intra-op threads (one pool per session would
leave each session's workers spinning while the next variant runs); its variants run
round-robin, one run each per round, so machine load hits all alike; median over the
rounds after --warmup. PyTorch (torch.set_num_threads) runs its rounds after them.
Printed: the CPU (model name, AVX-512 / VNNI flags from /proc/cpuinfo) and the load
average before and after, the quantized convs each int8 graph runs as QLinearConv
(counted in onnxruntime's optimized graph), file sizes, and (--profile) onnxruntime's
per-op-type kernel time (enable_profiling) at batch 1, 1 thread.
"""
import argparse
import collections
import copy
import datetime
import json
import os
import os.path as osp
import subprocess
import sys
import tempfile
import time

# PyTorch's OpenMP threads spin while waiting; on a shared machine two spinning threads
# measured the other processes' load (seconds per demo forward), not PyTorch. Set before
# torch is imported; an explicit OMP_WAIT_POLICY in the environment wins.
os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')

import numpy as np  # noqa: E402
import torch  # noqa: E402

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)

DEMO_CFG = 'configs/demo/retinanet_r18_w4a4_sgd_demo.py'
LIGHT_CFG = 'configs/demo/retinanet_mbv2_w4a4_sgd_demo.py'
R50_CFG = 'configs/retinanet_r50_w4a4_sgd.py'
VARIANTS = ('PyTorch FP32', 'ORT FP32', 'ORT quantize_static', 'ORT int8 (ours)',
            'ORT int8 subset')
ORT_FILES = {'ORT FP32': 'fp32', 'ORT quantize_static': 'anchor', 'ORT int8 (ours)': 'int8',
             'ORT int8 subset': 'int8_subset'}


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


def float_network(model):
    from mmtrs.export import collect_quant_layers
    from mmtrs.export.qdq_modules import FloatLayer
    net = copy.deepcopy(model).eval()
    for layer in collect_quant_layers(net):
        net.set_submodule(layer.name, FloatLayer(layer))
    return net


def calib_images(shape, n):
    rng = np.random.default_rng(0)
    return [rng.standard_normal((1, 3) + tuple(shape)).astype(np.float32) for _ in range(n)]


def anchor(fp32_path, out_path, images):
    """onnxruntime's quantize_static of the FP32 graph: QDQ, U8 activations, S8
    per-channel weights, MinMax calibration."""
    from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType,
                                          quantize_static)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter([{'input': x} for x in images])

        def get_next(self):
            return next(self.it, None)

    import logging
    root = logging.getLogger()
    level, root.level = root.level, logging.ERROR  # its advice to pre-process, per bias
    try:
        quantize_static(fp32_path, out_path, Reader(), quant_format=QuantFormat.QDQ,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        per_channel=True)
    finally:
        root.setLevel(level)


def export_all(model, out, shape, n_calib):
    """fp32 / qcdq / int8 / anchor ONNX files at trace size `shape`; returns paths."""
    import onnx

    from mmtrs.export import export_network, save_packed, to_int4, to_int8
    paths = {k: osp.join(out, f'model_{k}.onnx') for k in ('fp32', 'qcdq', 'int4', 'int8',
                                                            'int8_subset', 'anchor')}
    images = calib_images(shape, n_calib)
    export_network(model, paths['fp32'], 'fp32', (1, 3) + tuple(shape))
    proto = export_network(model, paths['qcdq'], 'qcdq', (1, 3) + tuple(shape))
    onnx.save(to_int4(proto), paths['int4'])
    onnx.save(to_int8(proto, images), paths['int8'])
    onnx.save(to_int8(proto, images, 'subset'), paths['int8_subset'])
    anchor(paths['fp32'], paths['anchor'], images)
    paths['packed'] = save_packed(model, osp.join(out, 'model_packed.pth'))[0]
    return paths


def fusion_rows(paths):
    """QLinearConv vs float Conv after onnxruntime's optimization, anchor and ours."""
    from mmtrs.export import count_fusion
    from mmtrs.export.onnx_detector import make_session
    rows = []
    ours = count_fusion(paths['int8'], 'all')
    rows.append(f'  int8 (ours): {ours["qlinear_conv"]} of {ours["quantized_convs"]} '
                f'quantized convs run as QLinearConv, {ours["float_conv"]} float Conv left; '
                f'{_op_summary(ours["ops"])}')
    with tempfile.TemporaryDirectory() as tmp:
        import onnx
        p = osp.join(tmp, 'opt.onnx')
        make_session(paths['anchor'], 'all', 1, optimized_path=p)
        ops = collections.Counter(n.op_type for n in onnx.load(p).graph.node)
    n_conv = sum(1 for n in onnx.load(paths['fp32']).graph.node if n.op_type == 'Conv')
    rows.append(f'  quantize_static: {ops.get("QLinearConv", 0)} of {n_conv} convs run as '
                f'QLinearConv, {ops.get("Conv", 0) + ops.get("FusedConv", 0)} float Conv '
                f'left; {_op_summary(ops)}')
    return rows


def _op_summary(ops):
    keys = ('QLinearAdd', 'QLinearMul', 'QuantizeLinear', 'DequantizeLinear', 'Clip',
            'Transpose')
    return ', '.join(f'{ops[k]} {k}' for k in keys if ops.get(k))


def size_rows(paths):
    fp = osp.getsize(paths['fp32'])
    labels = dict(fp32='FP32 ONNX', anchor='quantize_static ONNX (int8)',
                  int8='int8 ONNX (ours, model_int8.onnx)',
                  qcdq='QCDQ ONNX (model_qcdq.onnx)', int4='INT4 ONNX (model_int4.onnx)',
                  packed='packed checkpoint')
    return [f'  {labels[k]:36s} {osp.getsize(paths[k]) / 1e6:9.3f} MB  '
            f'{osp.getsize(paths[k]) / fp:6.3f}x FP32'
            for k in ('fp32', 'anchor', 'int8', 'qcdq', 'int4', 'packed')]


def latency_rows(fp_net, paths, shape, batches, threads_list, runs, warmup):
    rows = [f'  {"batch":>5s} {"thr":>3s}  ' + ''.join(f'{v:>21s}' for v in VARIANTS) +
            '   int8/FP32  int8/anchor']
    for threads in threads_list:
        # The onnxruntime variants run in a child process whose sessions share one global
        # thread pool of `threads` threads. With one pool per session (the default), a
        # session's worker threads spin-wait after its run while the next variant runs:
        # on 2 cores that measured the spinning, not the graph (2 threads slower than 1).
        spec = dict(paths={v: paths[f] for v, f in ORT_FILES.items()}, shape=list(shape),
                    batches=batches, threads=threads, runs=runs, warmup=warmup)
        proc = subprocess.run([sys.executable, osp.abspath(__file__), '--ort-latency',
                               json.dumps(spec)], capture_output=True, text=True, check=True)
        ort_med = json.loads(proc.stdout.strip().splitlines()[-1])
        torch.set_num_threads(threads)
        for batch in batches:
            x = torch.randn((batch, 3) + tuple(shape), generator=torch.Generator().manual_seed(1))
            times = []
            for i in range(warmup + runs):
                t = time.perf_counter()
                with torch.no_grad():
                    fp_net(x, mode='tensor')
                if i >= warmup:
                    times.append(time.perf_counter() - t)
            med = dict(ort_med[str(batch)], **{'PyTorch FP32': float(np.median(times))})
            rows.append(f'  {batch:5d} {threads:3d}  ' +
                        ''.join(f'{1e3 * med[v]:>19.1f}ms' for v in VARIANTS) +
                        f'   {med["ORT int8 (ours)"] / med["ORT FP32"]:8.2f}x '
                        f'{med["ORT int8 (ours)"] / med["ORT quantize_static"]:10.2f}x')
    torch.set_num_threads(max(threads_list))
    return rows


def ort_latency(spec):
    """Child process of latency_rows: median time per onnxruntime variant and batch, the
    variants run round-robin (one run each per round) on one shared thread pool."""
    import onnxruntime as ort
    from onnxruntime.capi import _pybind_state
    _pybind_state.set_global_thread_pool_sizes(spec['threads'], 1)  # before any session
    sessions = {}
    for v, path in spec['paths'].items():
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.use_per_session_threads = False
        so.log_severity_level = 3
        sessions[v] = ort.InferenceSession(path, so, providers=['CPUExecutionProvider'])
    out = {}
    for batch in spec['batches']:
        x = torch.randn([batch, 3] + spec['shape'], generator=torch.Generator().manual_seed(1))
        feed = {'input': x.numpy()}
        times = {v: [] for v in sessions}
        for i in range(spec['warmup'] + spec['runs']):
            for v, s in sessions.items():
                t = time.perf_counter()
                s.run(None, feed)
                if i >= spec['warmup']:
                    times[v].append(time.perf_counter() - t)
        out[str(batch)] = {v: float(np.median(t)) for v, t in times.items()}
    print(json.dumps(out))


def profile_rows(paths, shape, runs=10):
    """onnxruntime's kernel time per op type (enable_profiling), batch 1, 1 thread."""
    import onnxruntime as ort
    x = np.random.default_rng(2).standard_normal((1, 3) + tuple(shape)).astype(np.float32)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, key in (('FP32', 'fp32'), ('quantize_static', 'anchor'),
                           ('int8 (ours)', 'int8'), ('int8 subset', 'int8_subset')):
            so = ort.SessionOptions()
            so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            so.intra_op_num_threads = so.inter_op_num_threads = 1
            so.enable_profiling = True
            so.profile_file_prefix = osp.join(tmp, key)
            so.log_severity_level = 3
            s = ort.InferenceSession(paths[key], so, providers=['CPUExecutionProvider'])
            s.run(None, {'input': x})
            for _ in range(runs):
                s.run(None, {'input': x})
            with open(s.end_profiling()) as f:
                events = json.load(f)
            total, count = collections.Counter(), collections.Counter()
            for e in events:
                if e.get('cat') == 'Node' and e['name'].endswith('_kernel_time'):
                    op = e['args'].get('op_name')
                    total[op] += e['dur'] / (runs + 1)
                    count[op] += 1
            ops = ', '.join(f'{op} {t / 1e3:.2f} ({count[op] // (runs + 1)})'
                            for op, t in total.most_common(8))
            rows.append(f'  {label:16s} {sum(total.values()) / 1e3:7.2f} ms kernel time: '
                        f'{ops}')
    return rows


def accuracy_rows(name, qat_cfg, qat_ckpt, fp_cfg, fp_ckpt, cfg_options, n_calib, grids,
                  work, threads, n_compare=8):
    """COCO AP (unrounded, the config's test set) of: the FP model in PyTorch, the
    anchor (quantize_static of its FP32 graph, calibrated on n_calib val images), the
    QAT model in PyTorch (fake-quant), model_qcdq.onnx and model_int8.onnx (each
    grid, calibrated on the same val images); plus the int8 graph's head outputs
    against the fake-quant model's on n_compare test images."""
    import onnx
    from mmengine.config import Config

    from mmtrs.export import (build_detector, collect_quant_layers, dataset_batches,
                              export_network, load_qat_checkpoint, read_state_dict,
                              to_int8)
    from mmtrs.export.evaluation import evaluate_ap
    from mmtrs.export.verify import compare_network
    cfg = Config.fromfile(osp.join(ROOT, qat_cfg))
    fcfg = Config.fromfile(osp.join(ROOT, fp_cfg))
    for c in (cfg, fcfg):
        c.merge_from_dict(cfg_options or {})
    model = load_qat_checkpoint(build_detector(cfg), qat_ckpt, qat_cfg)
    shape = (1, 3, 256, 256)  # trace size; height and width stay dynamic
    files = {'qcdq': osp.join(work, 'model_qcdq.onnx')}
    proto = export_network(model, files['qcdq'], 'qcdq', shape)
    calib = [x.numpy() for x in dataset_batches(cfg, model, n_calib, 'val')]
    for grid in grids:
        files[f'int8 {grid}'] = osp.join(work, f'model_int8_{grid}.onnx')
        onnx.save(to_int8(proto, calib, grid), files[f'int8 {grid}'])
    fp = build_detector(fcfg)
    fp.load_state_dict(read_state_dict(fp_ckpt), strict=True)
    fp_path, anchor_path = osp.join(work, 'fp_fp32.onnx'), osp.join(work, 'fp_anchor.onnx')
    export_network(fp, fp_path, 'fp32', shape)
    anchor(fp_path, anchor_path,
           [x.numpy() for x in dataset_batches(fcfg, fp, n_calib, 'val')])
    _copy_metadata(fp_path, anchor_path)
    ap_q = evaluate_ap(cfg, qat_ckpt, files, osp.join(work, 'qat'), threads)
    ap_f = evaluate_ap(fcfg, fp_ckpt, {'anchor': anchor_path}, osp.join(work, 'fp'), threads)

    def ap(m):
        return f'{100 * m["unrounded/bbox_mAP"]:6.2f} (AP50 {100 * m["unrounded/bbox_mAP_50"]:5.2f})'

    rows = [f'## {name}: {qat_cfg} ({qat_ckpt}), FP model {fp_cfg} ({fp_ckpt})',
            f'  PyTorch FP32 (the FP model)                   {ap(ap_f["pytorch"])}',
            f'  quantize_static W8A8 of the FP model (anchor) {ap(ap_f["anchor"])}',
            f'  PyTorch fake-quant (the QAT model)            {ap(ap_q["pytorch"])}',
            f'  model_qcdq.onnx                               {ap(ap_q["qcdq"])}']
    want = 100 * ap_q['pytorch']['unrounded/bbox_mAP']
    test = dataset_batches(cfg, model, n_compare, 'test')
    layers = collect_quant_layers(model)
    for grid in grids:
        m = ap_q[f'int8 {grid}']
        r = compare_network(model, layers, files[f'int8 {grid}'], test, 'all', threads)
        rows.append(f'  {"model_int8.onnx, " + grid + " grid":46s}{ap(m)}   '
                    f'{100 * m["unrounded/bbox_mAP"] - want:+.3f} AP vs fake-quant; head '
                    f'outputs |d|/std max {r["head_max_abs_over_std"]:.3f}, mean '
                    f'{r["head_mean_abs_over_std"]:.4f} ({r["images"]} test images)')
    return rows


def _copy_metadata(src, dst):
    import onnx
    a, b = onnx.load(src), onnx.load(dst)
    have = {p.key for p in b.metadata_props}
    for p in a.metadata_props:
        if p.key not in have:
            b.metadata_props.add(key=p.key, value=p.value)
    onnx.save(b, dst)


def cpu_rows():
    info = open('/proc/cpuinfo').read().splitlines()
    name = next((ln.split(':', 1)[1].strip() for ln in info if ln.startswith('model name')),
                '?')
    flags = set(next((ln.split(':', 1)[1].split() for ln in info if ln.startswith('flags')),
                     []))
    want = ('avx2', 'avx512f', 'avx512bw', 'avx512_vnni', 'avx_vnni', 'amx_int8')
    return [f'# CPU: {name}, {os.cpu_count()} cores; ' +
            ', '.join(f'{f} {"yes" if f in flags else "no"}' for f in want)]


def load():
    with open('/proc/loadavg') as f:
        return ' '.join(f.read().split()[:3])


def header(argv):
    import onnxruntime
    commit = subprocess.run(['git', 'describe', '--always', '--dirty'], cwd=ROOT,
                            capture_output=True, text=True).stdout.strip() or 'none'
    return [f'# command: python benchmarks/export_cost.py {" ".join(argv)}'.rstrip(),
            f'# date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%dT%H:%MZ}  '
            f'commit: {commit}  torch {torch.__version__}  onnxruntime '
            f'{onnxruntime.__version__}  OMP_WAIT_POLICY={os.environ["OMP_WAIT_POLICY"]}',
            *cpu_rows(), f'# load average before: {load()}']


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ['--ort-latency']:
        return ort_latency(json.loads(argv[1]))
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--demo-ckpt', help='a trained demo W4A4 checkpoint (optional)')
    p.add_argument('--light-ckpt', help='a trained light-model W4A4 checkpoint (optional)')
    p.add_argument('--runs', type=int, default=20)
    p.add_argument('--warmup', type=int, default=3)
    p.add_argument('--r50-runs', type=int, default=2)
    p.add_argument('--batches', type=int, nargs='+', default=[1, 8])
    p.add_argument('--threads', type=int, nargs='+', default=[1, 2])
    p.add_argument('--calib', type=int, default=4, help='calibration images')
    p.add_argument('--skip-r50', action='store_true')
    p.add_argument('--profile', action='store_true')
    p.add_argument('--out', help='also write the table to this file (markdown)')
    p.add_argument('--accuracy', action='store_true',
                   help='instead of latency: COCO AP of the FP model, its quantize_static '
                   'anchor, the QAT model and its ONNX files (needs --demo-ckpt '
                   '--demo-fp-ckpt and/or --light-ckpt --light-fp-ckpt, and the data '
                   'set, e.g. via --cfg-options); appended to --out')
    p.add_argument('--demo-fp-ckpt', help='the FP checkpoint the demo QAT run started from')
    p.add_argument('--light-fp-ckpt', help='the FP checkpoint of the light QAT run')
    p.add_argument('--grids', nargs='+', default=['exact', 'subset'])
    p.add_argument('--calib-images', type=int, default=16, help='--accuracy calibration')
    p.add_argument('--cfg-options', nargs='+', default=[],
                   help='key=value overrides of the configs (--accuracy)')
    args = p.parse_args(argv)
    lines = header(argv)
    print('\n'.join(lines), flush=True)
    if args.accuracy:
        return main_accuracy(args, lines)
    cases = [('demo W4A4 RetinaNet-R18', DEMO_CFG, args.demo_ckpt, [(256, 256)], args.runs),
             ('light W4A4 RetinaNet-MobileNetV2', LIGHT_CFG, args.light_ckpt,
              [(160, 160), (320, 320)], args.runs)]
    if not args.skip_r50:
        cases.append(('COCO W4A4 RetinaNet-R50 (untrained)', R50_CFG, None, [(800, 1344)],
                      args.r50_runs))
    with tempfile.TemporaryDirectory() as tmp:
        for name, cfg, ckpt, shapes, runs in cases:
            model = quantized_model(cfg, ckpt)
            fp_net = float_network(model)
            for shape in shapes:
                out = osp.join(tmp, f'{name.split()[0]}_{shape[0]}')
                os.makedirs(out)
                paths = export_all(model, out, shape, args.calib)
                block = [f'## {name} ({cfg}{", " + ckpt if ckpt else ""}), '
                         f'{shape[0]}x{shape[1]}']
                block += fusion_rows(paths)
                block += ['file sizes:'] + size_rows(paths)
                warm = min(args.warmup, runs - 1)
                block += [f'latency (median of {runs} rounds after {warm} warm-up, '
                          'round-robin):']
                block += latency_rows(fp_net, paths, shape, args.batches, args.threads,
                                      runs, warm)
                if args.profile:
                    block += ['onnxruntime profile, batch 1, 1 thread (ms per run by op '
                              'type, (nodes)):'] + profile_rows(paths, shape)
                print('\n'.join(block), flush=True)
                lines += block
            del model, fp_net
    lines.append(f'# load average after: {load()}')
    print(lines[-1])
    if args.out:
        with open(args.out, 'w') as f:
            f.write('# Deployable export: CPU latency and file sizes\n\n'
                    'Printed by `benchmarks/export_cost.py` (command in the first line); '
                    'latencies are medians of round-robin rounds, ratios within one run.\n\n'
                    '```\n' + '\n'.join(lines) + '\n```\n')


def main_accuracy(args, lines):
    from mmengine.config import DictAction
    options = {}
    for kv in args.cfg_options:
        k, v = kv.split('=', 1)
        options[k] = DictAction._parse_iterable(v)
    cases = [('demo', DEMO_CFG, args.demo_ckpt, 'configs/demo/retinanet_r18_fp_demo.py',
              args.demo_fp_ckpt),
             ('light', LIGHT_CFG, args.light_ckpt, 'configs/demo/retinanet_mbv2_fp_demo.py',
              args.light_fp_ckpt)]
    with tempfile.TemporaryDirectory() as tmp:
        for name, cfg, ckpt, fp_cfg, fp_ckpt in cases:
            if not (ckpt and fp_ckpt):
                continue
            work = osp.join(tmp, name)
            os.makedirs(work)
            block = accuracy_rows(name, cfg, ckpt, fp_cfg, fp_ckpt, options,
                                  args.calib_images, args.grids, work, max(args.threads))
            print('\n'.join(block), flush=True)
            lines += block
    if args.out:
        with open(args.out, 'a') as f:
            f.write('\n## Accuracy\n\n```\n' + '\n'.join(lines) + '\n```\n')
    return lines


if __name__ == '__main__':
    main()
