"""The catalogue of realistic mistakes (docs/errors.md): each fails early, naming the
config key or file and the fix."""
import glob
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from torch import nn

import mmtrs  # noqa: F401
from mmtrs.apis import ConfigError, check_config
from mmtrs.utils import load_checkpoint_file
from mmtrs.quant import NegativeInputError, QConv2d, Quantizer, build_quant_cfg

from conftest import ROOT, data_options, run_tool

TRS_DEMO = osp.join(ROOT, 'configs/demo/retinanet_r18_w4a4_trs_demo.py')


def qmodel(learn_weight_scale=False):
    return nn.Sequential(QConv2d(3, 4, 3, w_bits=4, a_bits=4,
                                 learn_weight_scale=learn_weight_scale))


def trs(model, **kw):
    cfg = dict(type='TRSOptimWrapper', constructor='TRSOptimWrapperConstructor',
               optimizer=dict(type='SGD', lr=0.01, momentum=0.9))
    cfg.update(kw)
    return build_optim_wrapper(model, cfg)


@pytest.mark.parametrize('quant_cfg,match', [
    (dict(w_bits=0), r'quant_cfg\.w_bits=0 .*2 to 8'),                        # 1
    (dict(a_bits=9), r'quant_cfg\.a_bits=9'),                                 # 2
    (dict(w_bits=3.5), r'quant_cfg\.w_bits=3\.5'),                            # 3
    (dict(w_bit=4), r"Unknown quant_cfg key\(s\) \['w_bit'\]"),               # 4
    (dict(first_layer=8), r'quant_cfg\.first_layer must be None'),            # 5
    (dict(quant_types=('Conv3d',)), r'quant_cfg\.quant_types'),               # 6
])
def test_quantization_policy_mistakes(quant_cfg, match):
    with pytest.raises((ValueError, KeyError), match=match):
        build_quant_cfg(quant_cfg)


@pytest.mark.parametrize('kw,match', [
    (dict(tr_momentum=1.0), r'optim_wrapper\.tr_momentum=1\.0'),              # 7
    (dict(tr_momentum=-0.1), r'optim_wrapper\.tr_momentum'),
    (dict(init_target=-1e-4), r'optim_wrapper\.init_target=-0\.0001'),        # 8
    (dict(eta=-0.5), r'optim_wrapper\.eta=-0\.5'),                            # 9
    (dict(init_talr=float('nan')), r'optim_wrapper\.init_talr'),              # 10
    (dict(auto_target_iters=0), r'optim_wrapper\.auto_target_iters'),         # 11
])
def test_trs_hyper_parameter_mistakes(kw, match):
    with pytest.raises(ValueError, match=match):
        trs(qmodel(), **kw)


def test_unknown_optimizer_inside_trs():                                      # 12
    with pytest.raises(KeyError, match='SGDX'):
        build_optim_wrapper(qmodel(), dict(type='TRSOptimWrapper',
                                           constructor='TRSOptimWrapperConstructor',
                                           optimizer=dict(type='SGDX', lr=0.01)))


def test_trs_on_model_without_quantized_layers():                             # 13
    with pytest.raises(ValueError, match='found no quantized layer'):
        trs(nn.Sequential(nn.Conv2d(3, 4, 3)))


def test_trs_with_learnable_weight_scales():                                  # 14
    with pytest.raises(ValueError, match='learn_weight_scale=False'):
        trs(qmodel(learn_weight_scale=True))


def test_trs_without_its_constructor():                                       # 15
    model = qmodel()
    wrapper = build_optim_wrapper(model, dict(type='TRSOptimWrapper',
                                              optimizer=dict(type='SGD', lr=0.01)))
    model(torch.rand(1, 3, 8, 8)).sum().backward()
    with pytest.raises(RuntimeError, match="constructor='TRSOptimWrapperConstructor'"):
        wrapper.step()


def test_negative_input_to_unsigned_quantizer():                             # 16
    q = QConv2d(3, 4, 1, a_signed=False, name='neck.lateral_convs.0.conv')
    with pytest.raises(NegativeInputError, match='neck.lateral_convs.0.conv'):
        q(torch.randn(1, 3, 4, 4))


def test_quantized_model_evaluated_without_scales():                         # 17
    q = Quantizer(4, 'weight', name='backbone.conv1.weight_quantizer')
    q.eval()
    with torch.no_grad(), pytest.raises(RuntimeError, match='no scale yet.*Load a QAT checkpoint'):
        q(torch.randn(3))  # evaluation (MMEngine's val/test loops run without grad)
    # a frozen stage inside training: eval mode, grad on -> initialises from the batch
    q(torch.randn(3))
    assert q.is_initialized


def cfg_with(**options):
    cfg = Config.fromfile(TRS_DEMO)
    cfg.merge_from_dict(options)
    return cfg


def test_missing_annotation_file(tiny_coco):                                 # 18
    cfg = cfg_with(**dict(o.split('=', 1) for o in data_options(tiny_coco)
                          if 'scale' not in o))
    cfg.load_from = None
    check_config(cfg)  # the good case passes
    cfg.train_dataloader.dataset.ann_file = 'annotations/instances_trian.json'
    with pytest.raises(ConfigError, match=r'train_dataloader\.dataset\.ann_file'):
        check_config(cfg)


def test_missing_dataset_dir_names_generator():                               # 19
    cfg = cfg_with()
    cfg.train_dataloader.dataset.data_root = '/nonexistent/synthetic_coco/'
    with pytest.raises(ConfigError, match='make_synthetic_coco.py'):
        check_config(cfg)


def test_missing_and_corrupt_load_from(tiny_coco, tmp_path):                 # 20, 21
    cfg = cfg_with(**dict(o.split('=', 1) for o in data_options(tiny_coco)
                          if 'scale' not in o))
    cfg.load_from = str(tmp_path / 'missing.pth')
    with pytest.raises(ConfigError, match='load_from: checkpoint file .* does not exist'):
        check_config(cfg)
    bad = tmp_path / 'truncated.pth'
    good = tmp_path / 'good.pth'
    torch.save({'state_dict': {'w': torch.zeros(1000)}}, good)
    bad.write_bytes(good.read_bytes()[:500])
    cfg.load_from = str(bad)
    with pytest.raises(ConfigError, match='not a readable PyTorch checkpoint'):
        check_config(cfg)


def test_resume_trs_from_plain_sgd_checkpoint():                              # 22
    model = qmodel()
    plain = build_optim_wrapper(model, dict(type='OptimWrapper',
                                            optimizer=dict(type='SGD', lr=0.01)))
    wrapper = trs(model)
    with pytest.raises(RuntimeError, match='load_from=CKPT'):
        wrapper.load_state_dict(plain.state_dict())


def test_nan_loss_stops_with_iteration_and_keeps_last_good_checkpoint(tiny_coco, tmp_path):
    """23: an exploding LR makes the loss non-finite; training stops naming the
    iteration, and every checkpoint on disk holds finite weights."""
    wd = str(tmp_path)
    proc = run_tool(['tools/train.py', 'configs/demo/retinanet_r18_fp_demo.py',
                     '--work-dir', wd, '--cfg-options', *data_options(tiny_coco),
                     'optim_wrapper.optimizer.lr=1e6', 'optim_wrapper.clip_grad=None',
                     'param_scheduler=[]', 'train_cfg.max_iters=30',
                     'default_hooks.checkpoint.interval=1',
                     'default_hooks.checkpoint.max_keep_ckpts=40'], check=False)
    assert proc.returncode != 0
    assert 'FloatingPointError: Loss is' in proc.stderr, proc.stderr[-2000:]
    import re
    it = int(re.search(r'at iteration (\d+)', proc.stderr).group(1))
    ckpts = glob.glob(osp.join(wd, 'iter_*.pth'))
    assert not osp.exists(osp.join(wd, f'iter_{it}.pth'))
    assert len(ckpts) == it - 1
    for c in ckpts:
        sd = load_checkpoint_file(c)['state_dict']
        assert all(torch.isfinite(v).all() for v in sd.values() if v.is_floating_point())
