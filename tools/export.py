"""Export a QAT checkpoint for deployment (docs/export.md).

    python tools/export.py CONFIG CHECKPOINT --out DIR [--opset 17] [--input-size H W]
        [--fp32] [--no-int4] [--no-int8] [--int8-grid {exact,subset}] [--int8-adds]
        [--calib-images 16] [--calib-split val] [--cfg-options k=v ...]

Writes into DIR:
    model_int8.onnx    the deployment graph: onnxruntime (CPU) runs every quantized
                       conv as QLinearConv (uint8 activations holding the QAT levels,
                       int8 weights holding the QAT levels, BatchNorm folded into
                       per-channel scales, int32 biases); 8-bit re-quantizations
                       calibrated on --calib-images images of the config's
                       --calib-split set. The export counts the convs onnxruntime
                       fused (from the graph it saves after optimizing)
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
    p.add_argument('--no-int8', action='store_true', help='skip model_int8.onnx')
    p.add_argument('--int8-grid', default='exact', choices=['exact', 'subset'],
                   help="uint8 form of the activation levels in model_int8.onnx: 'exact' "
                   "(Eq. 13: trained step + uint8 Clip) or 'subset' (no Clip: 8-bit grid "
                   'whose levels include the b-bit ones; finer rounding than trained)')
    p.add_argument('--int8-adds', action='store_true',
                   help='re-quantize the outputs of residual / FPN Adds of model_int8.onnx '
                   'to 8 bits (onnxruntime runs them as QLinearAdd): about 1%% faster, '
                   'about 0.4 AP further from the fake-quant model; default: those Adds '
                   'stay float, as in the QAT model')
    p.add_argument('--calib-images', type=int, default=16,
                   help='images that calibrate the 8-bit re-quantizations of '
                   'model_int8.onnx')
    p.add_argument('--calib-split', default='val', choices=['val', 'train', 'test'],
                   help="the config's data set the calibration images come from")
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
           cfg_options=None, int8=True, int8_grid='exact', calib_images=16,
           calib_split='val', int8_adds=False):
    """Write the export files; returns the export.json dict."""
    import onnx
    from mmengine.config import Config

    from mmtrs.export import (build_detector, count_fusion, dataset_batches,
                              export_network, load_qat_checkpoint, save_packed, to_int4,
                              to_int8)
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
    fusion = None
    if int8:
        if calib_images < 1:
            raise ExportError(f'--calib-images {calib_images}: model_int8.onnx needs at '
                              'least one calibration image (or --no-int8).')
        try:
            calib = [x.numpy() for x in
                     dataset_batches(cfg, model, calib_images, calib_split)]
        except ExportError as e:
            raise ExportError(f'model_int8.onnx needs calibration images: {e} (or skip '
                              'it with --no-int8)') from None
        try:
            int8_proto = to_int8(proto, calib, int8_grid, int8_adds=int8_adds)
        except ExportError as e:  # a layer the int8 graph does not cover: the rest stays
            print(f'[export] no int8 graph: {e}')
            int8 = False
        else:
            files['int8'] = osp.join(out, 'model_int8.onnx')
            onnx.save(int8_proto, files['int8'])
            fusion = count_fusion(files['int8'], 'all')
    files['packed'], files['manifest'] = save_packed(
        model, osp.join(out, 'model_packed.pth'), osp.join(out, 'manifest.json'))
    if fp32:
        files['fp32'] = osp.join(out, 'model_fp32.onnx')
        export_network(model, files['fp32'], 'fp32', (1, 3, h, w), opset)
    summary = dict(config=config, checkpoint=checkpoint, opset=opset, input_size=[h, w],
                   files={k: osp.basename(v) for k, v in files.items()},
                   bytes={k: osp.getsize(v) for k, v in files.items()})
    if int8:
        summary.update(int8_grid=int8_grid, int8_adds=int8_adds,
                       calib_images=calib_images, calib_split=calib_split,
                       int8_fusion={k: v for k, v in fusion.items() if k != 'ops'})
    with open(osp.join(out, 'export.json'), 'w') as f:
        json.dump(summary, f, indent=1)
    return summary


def main(argv=None):
    args = parse_args(argv)
    from mmtrs.export.errors import ExportError
    try:
        summary = export(args.config, args.checkpoint, args.out, args.opset,
                         args.input_size, args.fp32, not args.no_int4, args.cfg_options,
                         not args.no_int8, args.int8_grid, args.calib_images,
                         args.calib_split, args.int8_adds)
    except ExportError as e:
        print(f'export error: {e}', file=sys.stderr)
        sys.exit(2)
    for key, name in summary['files'].items():
        print(f'[export] {key:8s} {osp.join(args.out, name)}  '
              f'{summary["bytes"][key] / 1e6:.3f} MB')
    fused = summary.get('int8_fusion')
    if fused:
        print(f'[export] int8: onnxruntime (graph optimization {fused["graph_opt"]}) ran '
              f'{fused["qlinear_conv"]} of {fused["quantized_convs"]} quantized convs as '
              f'QLinearConv; {fused["unfused"]} quantized convs left as float Conv')
    return summary


if __name__ == '__main__':
    main()
