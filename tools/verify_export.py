"""Verify the files of tools/export.py against the fake-quant PyTorch model
(docs/export.md).

    python tools/verify_export.py CONFIG CHECKPOINT EXPORT_DIR [--num-images N] [--ap]
        [--threads N] [--work-dir DIR] [--json OUT] [--cfg-options k=v ...]

1. Integer tensors: weight levels read back from model_qcdq.onnx, model_int4.onnx,
   model_int8.onnx and model_packed.pth equal Quantizer.discretize of the checkpoint's
   weights bit for bit; scales and integer ranges equal the model's (model_int8.onnx:
   each activation quantizer's uint8 scale, zero point and Clip); the model rebuilt
   from the packed checkpoint gives the same head outputs bit for bit.
2. Network, on the first N images of the config's test set, with onnxruntime's graph
   optimizations off and fully on: per-layer activation levels (fraction that differ,
   largest difference) and the head outputs (max / mean |difference| relative to each
   output's std); the quantized convs onnxruntime ran as QLinearConv.
3. (--ap) COCO AP of the ONNX models (graph optimizations on) and of the PyTorch
   fake-quant model through the same MMDetection pipeline and post-processing, on the
   whole test set, unrounded.
Exits with status 1 if an integer check fails, a level differs by more than 1 in
isolation, a quantized conv of model_int8.onnx stays a float Conv, or (--ap) an APs
differs from PyTorch's by more than --max-ap-diff (0.1 AP; model_int8.onnx, whose
8-bit re-quantizations are not in the QAT model: --max-ap-diff-int8, 0.3 AP).
"""
import argparse
import json
import os.path as osp
import sys
import tempfile

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))


def parse_args(argv=None):
    from mmengine.config import DictAction
    p = argparse.ArgumentParser(description='Verify an mmtrs export')
    p.add_argument('config')
    p.add_argument('checkpoint', help='the QAT checkpoint that was exported')
    p.add_argument('export_dir', help='the --out directory of tools/export.py')
    p.add_argument('--num-images', type=int, default=8,
                   help='test images for the level / head-output comparison')
    p.add_argument('--ap', action='store_true', help='also compare COCO AP (whole test set)')
    p.add_argument('--max-ap-diff', type=float, default=0.1, help='in AP points (0-100)')
    p.add_argument('--max-ap-diff-int8', type=float, default=0.3,
                   help='limit for model_int8.onnx, in AP points')
    p.add_argument('--threads', type=int, help='onnxruntime intra-op threads')
    p.add_argument('--work-dir', help='work dir of the --ap evaluation runs')
    p.add_argument('--json', help='write the full report (per layer) to this file')
    p.add_argument('--cfg-options', nargs='+', action=DictAction)
    return p.parse_args(argv)


def verify(args):
    import onnx
    import torch
    from mmengine.config import Config

    from mmtrs.export import (build_detector, collect_quant_layers, count_fusion,
                              dataset_batches, load_packed, load_qat_checkpoint,
                              rebuild_from_packed)
    from mmtrs.export.verify import check_integer_tensors, compare_network
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    model = load_qat_checkpoint(build_detector(cfg), args.checkpoint, args.config)
    layers = collect_quant_layers(model)
    d = args.export_dir
    files = {k: osp.join(d, f'model_{k}.onnx') for k in ('qcdq', 'int4', 'int8')}
    files = {k: v for k, v in files.items() if osp.isfile(v)}
    report = dict(config=args.config, checkpoint=args.checkpoint, export_dir=d)
    protos = {k: onnx.load(v) for k, v in files.items()}
    blob = load_packed(osp.join(d, 'model_packed.pth'))
    rows = check_integer_tensors(layers, protos, blob)
    failed = [r for r in rows if not r[3]]
    report['integer_checks'] = dict(checked=len(rows), failed=[list(r) for r in failed])
    print(f'[verify] integer tensors: {len(rows) - len(failed)}/{len(rows)} checks equal '
          f'({len(layers)} layers; files: {", ".join(list(files) + ["packed"])})')
    for r in failed[:10]:
        print(f'[verify]   MISMATCH {r[0]} {r[1]}: {r[2]}')

    batches = dataset_batches(cfg, model, args.num_images, 'test')
    rebuilt = rebuild_from_packed(build_detector(cfg), blob)
    with torch.no_grad():
        same = all(torch.equal(a, b) for x in batches
                   for ga, gb in zip(model(x, mode='tensor'), rebuilt(x, mode='tensor'))
                   for a, b in zip(ga, gb))
    report['packed_rebuild_bit_identical'] = same
    print(f'[verify] model rebuilt from model_packed.pth: head outputs '
          f'{"bit-identical" if same else "DIFFER"} on {args.num_images} images')

    report['network'] = []
    worst_level = 0
    for label, graph_opt in (('qcdq', 'disable'), ('qcdq', 'all'), ('int4', 'all'),
                             ('int8', 'disable'), ('int8', 'all')):
        if label not in files:
            continue
        r = compare_network(model, layers, files[label], batches, graph_opt, args.threads)
        r['file'] = label
        report['network'].append(r)
        worst_level = max(worst_level, r['levels_isolated']['max_diff'])
        e, i = r['levels_end_to_end'], r['levels_isolated']
        print(f'[verify] {label:5s} graph opt {graph_opt:7s} ({r["images"]} images): '
              f'activation levels, isolated (rounding only): {i["differing"]}/'
              f'{i["elements"]} = {100 * i["fraction"]:.5f}% differ, max {i["max_diff"]}; '
              f'end to end: {e["differing"]}/{e["elements"]} = {100 * e["fraction"]:.4f}% '
              f'differ, max {e["max_diff"]}, in {e["layers_with_differences"]} layers; '
              f'head outputs |d|/std max {r["head_max_abs_over_std"]:.2e}, mean '
              f'{r["head_mean_abs_over_std"]:.2e}')
    ok = not failed and same and worst_level <= 1
    report['fusion'] = {}
    for label in ('qcdq', 'int8'):
        if label not in files:
            continue
        fused = count_fusion(files[label], 'all', args.threads)
        report['fusion'][label] = fused
        print(f'[verify] {label:5s} onnxruntime graph opt all: {fused["qlinear_conv"]} of '
              f'{fused["quantized_convs"]} quantized convs run as QLinearConv, '
              f'{fused["float_conv"]} float Conv/FusedConv left')
        if label == 'int8':
            ok = ok and fused['unfused'] == 0
    if args.ap:
        wd = args.work_dir or tempfile.mkdtemp(prefix='mmtrs_verify_')
        onnx_files = {k: files[k] for k in ('qcdq', 'int8') if k in files}
        from mmtrs.export.evaluation import evaluate_ap
        ap = evaluate_ap(cfg, args.checkpoint, onnx_files, wd, args.threads)
        report['ap'] = ap
        want = 100 * ap['pytorch']['unrounded/bbox_mAP']
        for label in onnx_files:
            got = 100 * ap[label]['unrounded/bbox_mAP']
            limit = args.max_ap_diff_int8 if label == 'int8' else args.max_ap_diff
            diff = abs(got - want)
            report['ap'][f'{label}_diff_points'] = diff
            print(f'[verify] COCO AP: PyTorch fake-quant {want:.3f}, {label} ONNX '
                  f'(onnxruntime) {got:.3f}: difference {diff:.3f} AP (limit {limit})')
            ok = ok and diff <= limit
    report['ok'] = ok
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(report, f, indent=1)
    print(f'[verify] {"PASSED" if ok else "FAILED"}')
    return report


def main(argv=None):
    args = parse_args(argv)
    from mmtrs.export.errors import ExportError
    try:
        report = verify(args)
    except ExportError as e:
        print(f'export error: {e}', file=sys.stderr)
        sys.exit(2)
    if not report['ok']:
        sys.exit(1)
    return report


if __name__ == '__main__':
    main()
