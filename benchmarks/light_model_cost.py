"""Per-step cost of the light-model RetinaNet (MobileNetV2, configs/demo/retinanet_mbv2_*)
next to the R18 demo RetinaNet, interleaved in one process so that both see the same
machine load: FP and W4A4 train steps (forward + backward + SGD step) on a synthetic
batch, for several MobileNetV2 widen factors. Used to pick the widen factor and to
extrapolate the light-model study's wall time from the R18 demo's measured one.

    python benchmarks/light_model_cost.py [--widen 0.5 0.75 1.0] [--size 256] [--reps 3]
"""
import argparse
import copy
import os.path as osp
import time

import torch
import mmtrs  # noqa: F401 (registers the quantized models and the TRS wrapper)
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def build(cfg_path, widen=None):
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    register_all_modules()
    cfg = Config.fromfile(osp.join(ROOT, cfg_path))
    if widen is not None:
        from mmdet.models.utils import make_divisible
        cfg.model.backbone.widen_factor = widen
        # FPN inputs: stage 2 and stage 4 channels (x widen), conv2 stays 1280
        chans = [make_divisible(32 * widen, 8), make_divisible(96 * widen, 8), 1280]
        cfg.model.neck.in_channels = chans
    torch.manual_seed(0)
    model = MODELS.build(copy.deepcopy(cfg.model))
    wrapper = build_optim_wrapper(model, copy.deepcopy(cfg.optim_wrapper))
    return model, wrapper


def batch(size, n):
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData
    g = torch.Generator().manual_seed(0)
    samples = []
    for i in range(n):
        s = DetDataSample(metainfo=dict(img_shape=(size, size), pad_shape=(size, size),
                                        batch_input_shape=(size, size), scale_factor=(1, 1)))
        s.gt_instances = InstanceData(
            bboxes=torch.tensor([[10., 10., 60., 70.], [100., 80., 180., 200.]]) * size / 256,
            labels=torch.tensor([1, 3]))
        samples.append(s)
    return dict(inputs=[torch.randint(0, 255, (3, size, size), dtype=torch.uint8, generator=g)
                        for _ in range(n)], data_samples=samples)


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--widen', type=float, nargs='+', default=[0.5, 0.75, 1.0])
    p.add_argument('--size', type=int, default=256)
    p.add_argument('--batch', type=int, default=8)
    p.add_argument('--steps', type=int, default=3, help='timed steps per repetition')
    p.add_argument('--reps', type=int, default=3)
    args = p.parse_args()
    variants = [('R18 FP', 'configs/demo/retinanet_r18_fp_demo.py', None),
                ('R18 W4A4', 'configs/demo/retinanet_r18_w4a4_sgd_demo.py', None)]
    for w in args.widen:
        variants += [(f'MBv2 {w}x FP', 'configs/demo/retinanet_mbv2_fp_demo.py', w),
                     (f'MBv2 {w}x W4A4', 'configs/demo/retinanet_mbv2_w4a4_sgd_demo.py', w)]
    data = batch(args.size, args.batch)
    built = {}
    for name, path, w in variants:
        built[name] = build(path, w)
        built[name][0].train()
        built[name][0].train_step(data, built[name][1])  # warm-up, quantizer init
    times = {name: [] for name, *_ in variants}
    for _ in range(args.reps):  # interleaved: every variant sees the same load
        for name, *_ in variants:
            model, wrapper = built[name]
            t0 = time.perf_counter()
            for _ in range(args.steps):
                model.train_step(data, wrapper)
            times[name].append((time.perf_counter() - t0) / args.steps)
    ref = min(times['R18 FP'])
    print(f'train step, batch {args.batch}, {args.size} px, {torch.get_num_threads()} threads '
          f'(min of {args.reps} x {args.steps} steps, interleaved)')
    print(f'{"variant":<18}{"s/step":>9}{"x R18 FP":>10}')
    for name, *_ in variants:
        t = min(times[name])
        print(f'{name:<18}{t:>9.3f}{t / ref:>10.2f}')


if __name__ == '__main__':
    main()
