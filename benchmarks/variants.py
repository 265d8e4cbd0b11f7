"""The training set-ups the benchmarks compare, built the same way for every script.

Variants of the demo RetinaNet (same architecture, same data, same optimizer settings):
  fp            the FP detector, plain SGD
  qat_sgd       mmtrs W4A4 QAT (QuantizedDetector, LSQ scales), plain SGD
  qat_trs       mmtrs W4A4 QAT with TR scheduling (TRSOptimWrapper)
  qat_sgd_learned_input  qat_sgd with the first layer's input scale learned
                (quant_cfg.first_layer.input_scale='learned'): the stem conv then
                computes a gradient w.r.t. the image
  torchao_qat   the FP detector made QAT the way a PyTorch user would: every Conv2d
                replaced by torch.ao.nn.qat.Conv2d (per-channel 4-bit weight FakeQuantize)
                behind a 4-bit activation FakeQuantize, moving-average min/max observers
  brevitas_qat  the FP detector with every Conv2d replaced by brevitas.nn.QuantConv2d at
                Brevitas' defaults set to 4 bits: weights per-tensor abs-max scale
                (Int8WeightPerTensorFloat, weight_bit_width=4), inputs per-tensor learned
                scale (Int8ActPerTensorFloat, input_bit_width=4). Needs `pip install
                brevitas==0.13.4` (requirements-bench.txt).

Variants of the light model, RetinaNet-MobileNetV2 0.5x (configs/demo/retinanet_mbv2_*),
where TR scheduling matters most and depthwise convs make QAT relatively dearest:
  light_fp, light_qat_sgd, light_qat_trs   as fp, qat_sgd, qat_trs (W4A4)
"""
import copy
import os
import os.path as osp
import statistics
import time

import torch

import mmtrs  # noqa: F401 (registers the quantized models and the TRS wrapper)
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.optim import build_optim_wrapper

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))

CFG = {
    'fp': 'configs/demo/retinanet_r18_fp_demo.py',
    'qat_sgd': 'configs/demo/retinanet_r18_w4a4_sgd_demo.py',
    'qat_trs': 'configs/demo/retinanet_r18_w4a4_trs_demo.py',
    'torchao_qat': 'configs/demo/retinanet_r18_fp_demo.py',
    'brevitas_qat': 'configs/demo/retinanet_r18_fp_demo.py',
}
CFG['qat_sgd_learned_input'] = CFG['qat_sgd']
CFG.update(light_fp='configs/demo/retinanet_mbv2_fp_demo.py',
           light_qat_sgd='configs/demo/retinanet_mbv2_w4a4_sgd_demo.py',
           light_qat_trs='configs/demo/retinanet_mbv2_w4a4_trs_demo.py')
# the quantized layers keeping x_q for the backward pass instead of recomputing it
CFG.update(qat_sgd_keep_xq=CFG['qat_sgd'], light_qat_sgd_keep_xq=CFG['light_qat_sgd'])
# config changes of a variant on top of its config file
CFG_OPTIONS = {'qat_sgd_learned_input': {'model.quant_cfg.first_layer.input_scale': 'learned'},
               'qat_sgd_keep_xq': {'model.quant_cfg.recompute_input': False},
               'light_qat_sgd_keep_xq': {'model.quant_cfg.recompute_input': False}}
# optimizer settings of the toolkit variants: those of our plain-SGD QAT
QAT_OPTIM_FROM = 'qat_sgd'


# /proc/cpuinfo flags that name the vector (SIMD) extensions, whose presence decides
# which kernels oneDNN, ATen and the fused quantizer use: step-cost ratios depend on them
_VECTOR_FLAG_PREFIXES = ('sse4_2', 'avx', 'fma', 'f16c', 'amx')


def cpu_description():
    """'<CPU model>; ATen CPU capability <level>; <vector extensions>' for headers."""
    import platform
    model, flags = None, []
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                key, _, value = line.partition(':')
                if key.strip() == 'model name' and model is None:
                    model = value.strip()
                elif key.strip() == 'flags':
                    flags = sorted(v for v in value.split()
                                   if v.startswith(_VECTOR_FLAG_PREFIXES))
                    break
    except OSError:  # not Linux: the model name from platform only
        pass
    model = model or platform.processor() or 'unknown CPU'
    capability = torch.backends.cpu.get_cpu_capability()
    return (f'{model}; ATen CPU capability {capability}; '
            f'{" ".join(flags) or "vector flags unknown"}')


def add_allocator_arg(parser):
    parser.add_argument('--allocator', choices=['retain', 'default'], default='retain',
                        help="retain: glibc keeps freed memory between steps, as tools/"
                             "train.py sets it (env_cfg.retain_freed_memory); default: the "
                             "C library's own heap trimming")


def apply_allocator(choice):
    """Set this process's allocator as --allocator says; returns a line for headers."""
    from mmtrs.utils.allocator import retain_freed_memory
    if choice == 'retain' and retain_freed_memory():
        return 'allocator: glibc, freed memory retained (env_cfg.retain_freed_memory)'
    return 'allocator: C library default (heap trimmed)'


def load_average():
    """'1, 5 and 15 min load' of the machine, as `uptime` shows it."""
    try:
        return ' '.join(f'{v:.2f}' for v in os.getloadavg())
    except (OSError, AttributeError):
        return 'unknown'


def synthetic_batch(batch, size, seed=0):
    """A detection batch of random images with 4 random boxes each."""
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


def _replace_convs(model, make):
    convs = [(n, m) for n, m in model.named_modules() if type(m) is torch.nn.Conv2d]
    for name, conv in convs:
        parent_name, _, attr = name.rpartition('.')
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, attr, make(conv))
    return model


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

    def make(conv):
        conv.qconfig = qconfig
        return torch.nn.Sequential(qconfig.activation(), nnqat.Conv2d.from_float(conv))
    return _replace_convs(model, make)


def brevitas_qat(model):
    """Swap every nn.Conv2d for brevitas.nn.QuantConv2d (W4A4), weights carried over."""
    try:
        import brevitas.nn as qnn
        from brevitas.quant import Int8ActPerTensorFloat, Int8WeightPerTensorFloat
    except ImportError as e:
        raise SystemExit('brevitas_qat needs Brevitas: pip install -r '
                         'requirements-bench.txt') from e

    def make(conv):
        q = qnn.QuantConv2d(conv.in_channels, conv.out_channels, conv.kernel_size,
                            stride=conv.stride, padding=conv.padding,
                            dilation=conv.dilation, groups=conv.groups,
                            bias=conv.bias is not None,
                            weight_quant=Int8WeightPerTensorFloat, weight_bit_width=4,
                            input_quant=Int8ActPerTensorFloat, input_bit_width=4)
        q.load_state_dict(conv.state_dict(), strict=False)  # + the act-scale parameter
        return q
    return _replace_convs(model, make)


TOOLKIT = {'torchao_qat': torchao_qat, 'brevitas_qat': brevitas_qat}


def build_variant(name, device='cpu'):
    """(model in train mode on `device`, optim wrapper) of a variant, seeded
    identically."""
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    if name not in CFG:
        raise SystemExit(f'unknown variant {name!r}; choose from {sorted(CFG)}')
    register_all_modules()
    cfg = Config.fromfile(osp.join(ROOT, CFG[name]))
    cfg.merge_from_dict(CFG_OPTIONS.get(name, {}))
    torch.manual_seed(0)
    model = MODELS.build(copy.deepcopy(cfg.model))
    logger = MMLogger.get_current_instance()
    level, _ = logger.level, logger.setLevel('WARNING')  # init_weights' per-tensor report
    model.init_weights()
    logger.setLevel(level)
    optim = cfg.optim_wrapper
    if name in TOOLKIT:
        TOOLKIT[name](model)
        optim = Config.fromfile(osp.join(ROOT, CFG[QAT_OPTIM_FROM])).optim_wrapper
    model.to(device).train()
    return model, build_optim_wrapper(model, copy.deepcopy(optim))


def synchronize(device):
    """Wait for the device's queued kernels, so that a host timer measures them."""
    if torch.device(device).type == 'cuda':
        torch.cuda.synchronize(device)


def median_step_times(runs, data, iters, warmup, device='cpu'):
    """{variant: median seconds of a training step} for `runs` ({name: (model, wrapper)}),
    stepped round-robin so every variant sees the same machine state."""
    times = {n: [] for n in runs}
    for it in range(warmup + iters):
        for n, (model, wrapper) in runs.items():
            synchronize(device)
            t0 = time.perf_counter()
            model.train_step(copy.copy(data), wrapper)
            synchronize(device)
            if it >= warmup:
                times[n].append(time.perf_counter() - t0)
    return {n: statistics.median(v) for n, v in times.items()}
