"""The one-step recipe (configs/recipes/*.py, mmtrs/apis/quant_recipe.py) on stock
MMDetection detector configs: RetinaNet, FCOS, ATSS and Faster R-CNN, each shrunk to a
tiny width, started from an FP checkpoint of itself and trained a few steps on the
synthetic set by MMEngine's Runner built as MMDetection's tools/train.py builds it."""
import copy
import glob
import os.path as osp
import re

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import RUNNERS
from torch import nn

import mmtrs  # noqa: F401
from mmtrs.apis.configs import config_path
from mmtrs.apis.config_check import ConfigError
from mmtrs.apis.quant_recipe import apply_quant_recipe
from mmtrs.quant import QConv2d, QLinear

from conftest import ROOT

CLASSES = ('circle', 'square', 'triangle', 'ring', 'cross')
#: tiny ResNet-18 widths: stage outputs 16, 32, 64, 128 channels; FPN and heads 32
TINY_BACKBONE = "depth=18, base_channels=16, num_stages=4, out_indices=(0, 1, 2, 3)"
TINY_NECK = "in_channels=[16, 32, 64, 128], out_channels=32"
ONE_STAGE_HEAD = "num_classes=5, in_channels=32, feat_channels=32, stacked_convs=1"

#: detector -> (stock config, model overrides, final prediction layers (8 bit))
DETECTORS = {
    'retinanet': ('retinanet/retinanet_r50_fpn_1x_coco.py',
                  f'bbox_head=dict({ONE_STAGE_HEAD})',
                  ['bbox_head.retina_cls', 'bbox_head.retina_reg']),
    'fcos': ('fcos/fcos_r50-caffe_fpn_gn-head_1x_coco.py',
             f'bbox_head=dict({ONE_STAGE_HEAD}, norm_cfg=dict(type="GN", num_groups=8))',
             ['bbox_head.conv_cls', 'bbox_head.conv_reg', 'bbox_head.conv_centerness']),
    'atss': ('atss/atss_r50_fpn_1x_coco.py',
             f'bbox_head=dict({ONE_STAGE_HEAD}, norm_cfg=dict(type="GN", num_groups=8))',
             ['bbox_head.atss_cls', 'bbox_head.atss_reg', 'bbox_head.atss_centerness']),
    'faster_rcnn': ('faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py',
                    'rpn_head=dict(in_channels=32, feat_channels=32), roi_head=dict('
                    'bbox_roi_extractor=dict(out_channels=32), bbox_head=dict('
                    'in_channels=32, fc_out_channels=64, num_classes=5))',
                    ['rpn_head.rpn_cls', 'rpn_head.rpn_reg', 'roi_head.bbox_head.fc_cls',
                     'roi_head.bbox_head.fc_reg']),
}


def tiny_config(stock, head, data_root):
    """The text of a config that shrinks a stock MMDetection config and points it at the
    synthetic set: 4 training images at 64 px, batch 2, 1 epoch (2 iterations), no
    validation, no checkpoint."""
    root = data_root.rstrip('/') + '/'
    return f'''_base_ = ['mmdet::{stock}']
model = dict(backbone=dict({TINY_BACKBONE}), neck=dict({TINY_NECK}), {head})
train_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False,
    dataset=dict(data_root='{root}', ann_file='annotations/instances_train.json',
                 data_prefix=dict(img='train/'), metainfo=dict(classes={CLASSES!r}),
                 indices=4,
                 pipeline=[dict(type='LoadImageFromFile'),
                           dict(type='LoadAnnotations', with_bbox=True),
                           dict(type='Resize', scale=(64, 64), keep_ratio=True),
                           dict(type='PackDetInputs')]))
train_cfg = dict(max_epochs=1)
val_dataloader = val_cfg = val_evaluator = None
test_dataloader = test_cfg = test_evaluator = None
default_hooks = dict(logger=dict(interval=1), checkpoint=None)
'''


def recipe_config(fp_file, recipe, load_from, opts=''):
    """A child of `fp_file` that adds a recipe file (outside the repository: the recipe
    is found through the installed configs)."""
    return f'''_base_ = ['./{osp.basename(fp_file)}',
          __import__('mmtrs.apis.configs', fromlist=['*']).config_path('{recipe}')]
load_from = {load_from!r}
{opts}
'''


def float_layers(model):
    """Names of the layers the policy converts (exact Conv2d / Linear classes)."""
    from mmcv.cnn.bricks import wrappers
    kinds = (nn.Conv2d, nn.Linear, wrappers.Conv2d, wrappers.Linear)
    return [n for n, m in model.named_modules() if type(m) in kinds]


@pytest.mark.parametrize('name', list(DETECTORS))
def test_recipe_trains_a_stock_detector(name, tiny_coco, tmp_path):
    from mmdet.registry import MODELS
    stock, head, last = DETECTORS[name]
    fp_file = tmp_path / 'fp.py'
    fp_file.write_text(tiny_config(stock, head, tiny_coco))
    torch.manual_seed(0)
    fp_model = MODELS.build(Config.fromfile(str(fp_file)).model)
    expected = float_layers(fp_model)
    ckpt = str(tmp_path / 'fp.pth')
    torch.save({'state_dict': fp_model.state_dict()}, ckpt)

    q_file = tmp_path / 'q.py'
    q_file.write_text(recipe_config(
        fp_file, 'recipes/w4a4_trs.py', ckpt,
        'quant_recipe = dict(tr=dict(auto_target_iters=1, eta_adapt_iters=1), '
        'tr_hook=dict(interval=1))'))
    cfg = Config.fromfile(str(q_file))
    cfg.work_dir = str(tmp_path / 'work')
    runner = RUNNERS.build(cfg)   # as MMDetection's tools/train.py, with runner_type
    runner.train()

    model = runner.model
    layers = {n: m for n, m in model.named_modules() if isinstance(m, (QConv2d, QLinear))}
    assert sorted(layers) == sorted(expected)   # every conv and linear quantized
    bits = {n: (m.weight_quantizer.bits, m.act_quantizer.bits) for n, m in layers.items()}
    assert all(bits[n] == (8, 8) for n in last)
    assert bits['backbone.conv1'] == (8, 8)
    body = [n for n in layers if n not in last and n != 'backbone.conv1']
    assert body and all(bits[n] == (4, 4) for n in body)
    if name == 'faster_rcnn':   # the RoI head's Linear layers
        fcs = {n for n, m in layers.items() if isinstance(m, QLinear)}
        assert fcs == {'roi_head.bbox_head.shared_fcs.0', 'roi_head.bbox_head.shared_fcs.1',
                       'roi_head.bbox_head.fc_cls', 'roi_head.bbox_head.fc_reg'}

    assert type(runner.optim_wrapper).__name__ == 'TRSOptimWrapper'
    assert runner.iter == 2 and not runner.optim_wrapper.measuring_target
    assert not any(m.weight_quantizer.scale.requires_grad for m in layers.values())
    log = open(glob.glob(osp.join(cfg.work_dir, '*', '*.log'))[0]).read()
    # the coverage report, counted independently above
    assert f'mmtrs: quantized {len(expected)} layers' in log
    assert 'quantization coverage' in log
    # every key of the FP checkpoint was used and none was missing
    assert 'Load checkpoint from' in log
    assert 'missing keys' not in log and 'unexpected key' not in log
    losses = [float(v) for v in re.findall(r' loss: ([-\d.e]+)', log)]
    assert len(losses) == 2 and all(torch.isfinite(torch.tensor(losses)))


# ---- the rewrite, key by key ------------------------------------------------------------
#: configs/_base_/quant/w4a4.py, written out
W4A4_POLICY = dict(w_bits=4, a_bits=4, init_mult=3.0,
                   first_layer=dict(w_bits=8, a_bits=8, init_mult=12.0),
                   last_layers=dict(w_bits=8, a_bits=8, init_mult=12.0),
                   act_signed='auto', learn_weight_scale=True, learn_act_scale=True)
#: configs/_base_/quant/recipe.py's TRSOptimWrapper keys, written out
TR_KEYS = dict(tr_momentum=0.99, init_talr=None, eta='auto', init_target='auto',
               auto_target_scale=3.0, auto_target_iters=1000, eta_adapt_iters=1000, per_layer=False,
               bias_correction=True)


@pytest.fixture(scope='module')
def stock_retinanet(tmp_path_factory):
    """MMDetection's retinanet_r50_fpn_1x_coco.py with a recipe file as second base,
    once with W4A4 TR scheduling and once with W3A3 plain QAT."""
    out = {}
    for recipe in ('w4a4_trs', 'w3a3_qat'):
        path = tmp_path_factory.mktemp('recipe') / f'{recipe}.py'
        path.write_text(f"_base_ = ['mmdet::retinanet/retinanet_r50_fpn_1x_coco.py', "
                        f"{config_path(f'recipes/{recipe}.py')!r}]\n")
        out[recipe] = Config.fromfile(str(path))
    return out


def test_recipe_rewrites_a_stock_config(stock_retinanet):
    cfg = copy.deepcopy(stock_retinanet['w4a4_trs'])
    new = apply_quant_recipe(cfg)
    assert cfg.model.type == 'RetinaNet'
    assert cfg.runner_type == 'mmtrs.apis.quant_recipe.QuantRecipeRunner'
    assert 'custom_imports' not in cfg   # the detector config's own may be there
    assert new.model.type == 'QuantizedDetector' and new.model.detector_type == 'RetinaNet'
    assert new.model.quant_cfg == dict(W4A4_POLICY, learn_weight_scale=False)
    rest = {k: v for k, v in new.model.items()
            if k not in ('type', 'detector_type', 'quant_cfg')}
    assert rest == {k: v for k, v in cfg.model.items() if k != 'type'}
    assert new.model.backbone.init_cfg == dict(type='Pretrained',
                                               checkpoint='torchvision://resnet50')
    assert new.optim_wrapper == dict(
        type='TRSOptimWrapper', constructor='TRSOptimWrapperConstructor', _scope_='mmdet',
        optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=0.0001), **TR_KEYS)
    # the stock 1x schedule (warm-up, steps at epochs 8 and 11) plus the target TR's
    assert new.param_scheduler[:2] == cfg.param_scheduler
    assert new.param_scheduler[2] == dict(
        type='CosineAnnealingParamScheduler', param_name='target_tr', by_epoch=True,
        convert_to_iter_based=True, begin=0, end=12, T_max=12, eta_min=0.0)
    assert new.custom_hooks == [dict(type='FiniteLossHook'),
                                dict(type='TransitionRateHook', interval=500)]
    assert 'runner_type' not in new and 'quant_recipe' not in new
    # a start checkpoint replaces the ImageNet init (nothing is downloaded)
    cfg.load_from = 'fp.pth'
    assert apply_quant_recipe(cfg).model.backbone.init_cfg is None
    cfg.load_from = None
    # an iteration-based run, an AMP wrapper, a target schedule of the user's own
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=300)
    cfg.optim_wrapper.type = 'AmpOptimWrapper'
    new = apply_quant_recipe(cfg)
    assert new.optim_wrapper.type == 'AmpTRSOptimWrapper'
    assert (new.param_scheduler[2].by_epoch, new.param_scheduler[2].end) == (False, 300)
    assert 'convert_to_iter_based' not in new.param_scheduler[2]
    cfg.param_scheduler = new.param_scheduler[:1] + new.param_scheduler[2:]
    assert apply_quant_recipe(cfg).param_scheduler == cfg.param_scheduler


def test_recipe_on_a_config_with_custom_imports(tmp_path):
    """The recipe adds no custom_imports, so a detector config that has its own (here
    the FP demo RetinaNet) takes it as a second base without a duplicate key."""
    path = tmp_path / 'q.py'
    path.write_text(f"_base_ = [{osp.join(ROOT, 'configs/demo/retinanet_r18_fp_demo.py')!r}, "
                    f"{config_path('recipes/w4a4_qat.py')!r}]\n")
    cfg = Config.fromfile(str(path))
    assert cfg.custom_imports == dict(imports=['mmtrs'], allow_failed_imports=False)
    new = apply_quant_recipe(cfg)
    assert (new.model.type, new.model.detector_type) == ('QuantizedDetector', 'RetinaNet')
    assert new.model.quant_cfg == W4A4_POLICY
    assert [h['type'] for h in new.custom_hooks] == ['FiniteLossHook', 'TransitionRateHook']


def test_recipe_plain_qat_keeps_the_optimizer(stock_retinanet):
    cfg = stock_retinanet['w3a3_qat']
    new = apply_quant_recipe(cfg)
    assert new.model.quant_cfg == dict(W4A4_POLICY, w_bits=3, a_bits=3)
    assert new.optim_wrapper == cfg.optim_wrapper
    assert new.param_scheduler == cfg.param_scheduler
    assert [h['type'] for h in new.custom_hooks] == ['FiniteLossHook', 'TransitionRateHook']


@pytest.mark.parametrize('key,value,message', [
    ('model.type', 'QuantizedDetector', "model.type is already 'QuantizedDetector'"),
    ('optim_wrapper.type', 'ZeroRedundancyOptimizer', 'optim_wrapper.type'),
    ('optim_wrapper.constructor', 'LayerDecayOptimizerConstructor',
     'optim_wrapper.constructor'),
    ('train_cfg', dict(type='EpochBasedTrainLoop'), 'train_cfg: neither max_iters nor'),
    ('quant_recipe.trs', 'yes', 'quant_recipe.trs'),
    ('quant_recipe.lr_mult', 2.0, "quant_recipe: unknown key(s) ['lr_mult']"),
    ('quant_cfg', None, 'quant_cfg: missing'),
    ('optim_wrapper', None, 'optim_wrapper: missing'),
])
def test_recipe_refuses_what_it_cannot_rewrite(stock_retinanet, key, value, message):
    cfg = copy.deepcopy(stock_retinanet['w4a4_trs'])
    cfg.merge_from_dict({key: value}, allow_list_keys=False)
    if key == 'train_cfg':
        cfg.train_cfg = value
    with pytest.raises(ConfigError, match=re.escape(message)):
        apply_quant_recipe(cfg)


# ---- from outside the repository, with MMDetection's own train script -------------------
def test_child_config_outside_the_repo_trains_with_mmdet_train_script(tiny_coco, tmp_path):
    """A config written in a directory of its own inherits a stock MMDetection config and
    an installed mmtrs recipe, and MMDetection's tools/train.py (installed with mmdet in
    mmdet/.mim/tools) trains it W4A4 with TR scheduling. The repository is not on the
    path: mmtrs and its configs are found as installed."""
    import os
    import subprocess
    import sys
    import mmdet
    from mmdet.registry import MODELS
    from mmtrs.utils import read_scalars
    stock, head, _ = DETECTORS['retinanet']
    fp_file = tmp_path / 'fp.py'
    fp_file.write_text(tiny_config(stock, head, tiny_coco))
    torch.manual_seed(0)
    torch.save({'state_dict': MODELS.build(Config.fromfile(str(fp_file)).model).state_dict()},
               tmp_path / 'fp.pth')
    (tmp_path / 'my_w4a4_trs.py').write_text(recipe_config(
        fp_file, 'recipes/w4a4_trs.py', 'fp.pth',
        'quant_recipe = dict(tr=dict(auto_target_iters=1, eta_adapt_iters=1), '
        'tr_hook=dict(interval=1))\nrandomness = dict(seed=0)'))
    train = osp.join(osp.dirname(mmdet.__file__), '.mim', 'tools', 'train.py')
    env = {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}
    env.update(PYTHONWARNINGS='ignore', OMP_NUM_THREADS='2')
    proc = subprocess.run([sys.executable, train, 'my_w4a4_trs.py', '--work-dir', 'work'],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    dumped = Config.fromfile(str(tmp_path / 'work' / 'my_w4a4_trs.py'))
    assert dumped.model.type == 'QuantizedDetector' and dumped.model.detector_type == 'RetinaNet'
    assert dumped.optim_wrapper.type == 'TRSOptimWrapper'
    assert 'runner_type' not in dumped
    records = read_scalars(str(tmp_path / 'work'))
    assert [r['iter'] for r in records if 'loss' in r] == [1, 2]
    assert 'tr/talr' in records[-1]
    out = proc.stdout + proc.stderr
    assert 'mmtrs recipe: model: RetinaNet -> QuantizedDetector' in out
    # R^0 measured over the first step; the TALR drove the second (Eqs. 11-12)
    assert 'TRSOptimWrapper: measured running TR' in out


def test_configs_are_installed_with_the_package(tmp_path):
    """Editable install (tools/install.sh): the installed configs are the checkout's;
    a regular build copies every config into mmtrs/.mim/configs."""
    import subprocess
    import sys
    from mmtrs.apis.configs import configs_dir
    assert osp.realpath(configs_dir()) == osp.join(ROOT, 'configs')
    proc = subprocess.run([sys.executable, 'setup.py', '-q', 'build_py', '--build-lib',
                           str(tmp_path)], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ours = {osp.relpath(p, osp.join(ROOT, 'configs'))
            for p in glob.glob(osp.join(ROOT, 'configs', '**', '*.py'), recursive=True)}
    built = tmp_path / 'mmtrs' / '.mim' / 'configs'
    copied = {osp.relpath(p, built) for p in glob.glob(str(built / '**' / '*.py'),
                                                         recursive=True)}
    assert ours and copied == ours
    assert not osp.islink(built)


def test_readme_recipe_example_resolves(tmp_path):
    """The README's "Quantize your own detector" config, as written there, in a
    directory of its own: a stock RetinaNet quantized W4A4 with TR scheduling."""
    text = open(osp.join(ROOT, 'README.md')).read()
    section = text.split('## Quantize your own detector', 1)[1].split('\n## ', 1)[0]
    block = section.split('```python\n', 1)[1].split('```', 1)[0]
    (tmp_path / 'my_w4a4_trs.py').write_text(block)
    cfg = apply_quant_recipe(Config.fromfile(str(tmp_path / 'my_w4a4_trs.py')))
    assert (cfg.model.type, cfg.model.detector_type) == ('QuantizedDetector', 'RetinaNet')
    assert (cfg.model.quant_cfg.w_bits, cfg.model.quant_cfg.a_bits) == (4, 4)
    assert cfg.optim_wrapper.type == 'TRSOptimWrapper'
    assert cfg.load_from.endswith('retinanet_r50_fpn_1x_coco_20200130-c2398f9e.pth')
