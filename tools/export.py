"""Export a QAT checkpoint for deployment (docs/export.md).

    python tools/export.py CONFIG CHECKPOINT --out DIR [--opset 17] [--input-size H W]
        [--fp32] [--no-int4] [--cfg-options k=v ...]

Writes into DIR:
    model_qcdq.onnx    the network (mode='tensor') with integer weight initializers
                       (int8 containers) and QuantizeLinear/Clip/DequantizeLinear
                       activations; runs in onnxruntime (CPU)
    model_int4.onnx    the same graph at opset 21 with INT4 initializers for every
                       layer of <= 4 bits (8-bit layers stay int8): the size artifact
    model_packed.pth   integer levels (two per byte for <= 4 bits), scales and the other
                       float tensors; manifest.json lists per layer bits, signedness,
                       scales, gamma and integer ranges
    model_fp32.onnx    (--fp32) the same network unquantized, for size/latency baselines
    export.json        what was written, with file sizes
Check them with tools/verify_export.py; evaluate an ONNX file with tools/test_onnx.py.
A bad input (FP checkpoint, uninitialised quantizers, checkpoint of another model,
unsupported layer) stops with one line naming the file or key.
"""
import argparse
import json
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))


def parse_args(argv=None):
    from mmengine.config import DictAction
    p = argparse.ArgumentParser(description='Export a quantized detector (mmtrs)')
    p.add_argument('config')
    p.add_argument('checkpoint')
    p.add_argument('--out', required=True, help='output directory')
    p.add_argument('--opset', type=int, default=17,
                   help='opset of model_qcdq.onnx and model_fp32.onnx (>= 13)')
    p.add_argument('--input-size', type=int, nargs=2, metavar=('H', 'W'),
                   help='trace size (height and width stay dynamic in the graph); '
                   "default: the test pipeline's Resize scale, padded like the "
                   'data preprocessor')
    p.add_argument('--fp32', action='store_true', help='also write model_fp32.onnx')
    p.add_argument('--no-int4', action='store_true', help='skip model_int4.onnx')
    p.add_argument('--cfg-options', nargs='+', action=DictAction,
                   help='override settings in the config, key=value format')
    return p.parse_args(argv)


def default_input_size(cfg):
    """(H, W) of the test pipeline's Resize scale (mmcv order: (w, h)), padded to the
    data preprocessor's pad_size_divisor; 800x1333-style scales become 800x1344."""
    size = (512, 512)
    for t in cfg.get('test_dataloader', {}).get('dataset', {}).get('pipeline', []):
        if t.get('type') == 'Resize' and t.get('scale'):
            w, h = t['scale']
            size = (min(w, h), max(w, h)) if t.get('keep_ratio') else (h, w)
    div = cfg.model.get('data_preprocessor', {}).get('pad_size_divisor', 1) or 1
    return tuple(-(-s // div) * div for s in size)


def export(config, checkpoint, out, opset=17, input_size=None, fp32=False, int4=True,
           cfg_options=None):
    """Write the export files; returns the export.json dict."""
    import onnx
    from mmengine.config import Config

    from mmtrs.export import (build_detector, export_network, load_qat_checkpoint,
                              save_packed, to_int4)
    from mmtrs.export.errors import ExportError
    if not osp.isfile(config):
        raise ExportError(f'{config}: config file does not exist.')
    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    model = build_detector(cfg)
    load_qat_checkpoint(model, checkpoint, config)
    os.makedirs(out, exist_ok=True)
    h, w = input_size or default_input_size(cfg)
    files = {}
    qcdq = osp.join(out, 'model_qcdq.onnx')
    proto = export_network(model, qcdq, 'qcdq', (1, 3, h, w), opset)
    files['qcdq'] = qcdq
    if int4:
        try:
            int4_path = osp.join(out, 'model_int4.onnx')
            onnx.save(to_int4(proto), int4_path)
            files['int4'] = int4_path
        except ExportError as e:
            print(f'[export] no int4 graph: {e}')
    files['packed'], files['manifest'] = save_packed(
        model, osp.join(out, 'model_packed.pth'), osp.join(out, 'manifest.json'))
    if fp32:
        files['fp32'] = osp.join(out, 'model_fp32.onnx')
        export_network(model, files['fp32'], 'fp32', (1, 3, h, w), opset)
    summary = dict(config=config, checkpoint=checkpoint, opset=opset, input_size=[h, w],
                   files={k: osp.basename(v) for k, v in files.items()},
                   bytes={k: osp.getsize(v) for k, v in files.items()})
    with open(osp.join(out, 'export.json'), 'w') as f:
        json.dump(summary, f, indent=1)
    return summary


def main(argv=None):
    args = parse_args(argv)
    from mmtrs.export.errors import ExportError
    try:
        summary = export(args.config, args.checkpoint, args.out, args.opset,
                         args.input_size, args.fp32, not args.no_int4, args.cfg_options)
    except ExportError as e:
        print(f'export error: {e}', file=sys.stderr)
        sys.exit(2)
    for key, name in summary['files'].items():
        print(f'[export] {key:8s} {osp.join(args.out, name)}  '
              f'{summary["bytes"][key] / 1e6:.3f} MB')
    return summary


if __name__ == '__main__':
    main()
