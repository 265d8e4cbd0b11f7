"""The model-zoo start configs (configs/zoo/): a checkpoint in the key layout of
MMDetection's released weights for the stock config loads into the quantized model
with every key used and none missing except the quantizer state, which an FP file
cannot have; those scales are then set from the first training batch."""
import glob
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.runner.checkpoint import load_checkpoint

import mmtrs  # noqa: F401
from mmtrs.apis.quant_recipe import apply_quant_recipe
from mmtrs.quant import QConv2d, QLinear

from conftest import ROOT

STOCK = {'retinanet_r50_fpn_1x_coco': 'retinanet/retinanet_r50_fpn_1x_coco.py',
         'fcos_r50-caffe_fpn_gn-head_1x_coco': 'fcos/fcos_r50-caffe_fpn_gn-head_1x_coco.py',
         'atss_r50_fpn_1x_coco': 'atss/atss_r50_fpn_1x_coco.py'}
#: the state each quantizer adds to a float layer (mmtrs/quant/quantizer.py)
QUANTIZER_KEYS = ('scale', 'initialized', 'signed_flag')


def build(model_cfg):
    from mmdet.registry import MODELS
    from mmengine.registry import init_default_scope
    init_default_scope('mmdet')
    torch.manual_seed(0)
    return MODELS.build(model_cfg)


@pytest.fixture(scope='module', params=list(STOCK))
def zoo_file(request, tmp_path_factory):
    """The stock FP model's weights saved as the released files are: a dict with
    `meta` and `state_dict` (the model's own state_dict keys)."""
    name = request.param
    cfg = Config.fromfile(osp.join(ROOT, 'configs', 'zoo', f'{name}_w4a4_sgd.py'))
    import mmdet
    stock = Config.fromfile(osp.join(osp.dirname(mmdet.__file__), '.mim', 'configs',
                                     STOCK[name]))
    model = build(stock.model)
    path = tmp_path_factory.mktemp('zoo') / osp.basename(cfg.load_from)
    torch.save({'meta': {'mmdet_version': '3.3.0'}, 'state_dict': model.state_dict()}, path)
    return name, str(path), model.state_dict()


def test_every_zoo_config_has_a_key_test():
    names = {osp.basename(p) for p in glob.glob(osp.join(ROOT, 'configs', 'zoo', '*.py'))}
    assert names == {f'{n}_{b}_{o}.py' for n in STOCK for b in ('w4a4', 'w3a3')
                     for o in ('sgd', 'trs')}


@pytest.fixture(scope='module')
def loaded(zoo_file):
    """The W4A4 SGD zoo config's quantized model with the zoo file loaded strictly: any
    unexpected key, and any missing key but the quantizers' own state, raises."""
    name, path, fp_state = zoo_file
    cfg = apply_quant_recipe(Config.fromfile(
        osp.join(ROOT, 'configs', 'zoo', f'{name}_w4a4_sgd.py')))
    assert cfg.load_from == f'checkpoints/{osp.basename(path)}'
    assert cfg.model.backbone.init_cfg is None   # nothing downloads
    model = build(cfg.model)
    load_checkpoint(model, path, map_location='cpu', strict=True)
    return name, model, fp_state


def test_zoo_checkpoint_loads_with_every_key(loaded):
    name, model, fp_state = loaded
    layers = {n: m for n, m in model.named_modules() if isinstance(m, (QConv2d, QLinear))}
    # the quantized model = the FP keys + exactly the quantizers' own state
    quantizer_keys = {f'{n}.{q}.{k}' for n, m in layers.items()
                      for q in ('weight_quantizer', 'act_quantizer')
                      if getattr(m, q) is not None for k in QUANTIZER_KEYS}
    state = model.state_dict()
    assert set(state) == set(fp_state) | quantizer_keys
    assert not set(fp_state) & quantizer_keys
    assert all(torch.equal(state[k], v) for k, v in fp_state.items())
    assert {m.weight_quantizer.bits for m in layers.values()} == {4, 8}


@pytest.mark.parametrize('variant', ['w4a4_trs', 'w3a3_sgd', 'w3a3_trs'])
def test_zoo_variants_differ_only_in_the_policy(variant):
    """Same model keys as the W4A4 SGD config (so the same load), other bits / frozen
    weight scales, and TR scheduling around the same SGD."""
    for name in STOCK:
        root, cfg = (apply_quant_recipe(Config.fromfile(
            osp.join(ROOT, 'configs', 'zoo', f'{name}_{v}.py'))) for v in ('w4a4_sgd', variant))
        bits = int(variant[1])
        trs = variant.endswith('trs')
        expected = dict(root.model.quant_cfg, w_bits=bits, a_bits=bits,
                        learn_weight_scale=not trs)
        assert cfg.model.quant_cfg == expected
        assert dict(cfg.model, quant_cfg=None) == dict(root.model, quant_cfg=None)
        assert cfg.load_from == root.load_from and cfg.train_cfg == root.train_cfg
        assert cfg.optim_wrapper.type == ('TRSOptimWrapper' if trs else 'OptimWrapper')
        assert cfg.optim_wrapper.optimizer == root.optim_wrapper.optimizer


def test_zoo_quantizer_scales_come_from_the_first_batch(loaded):
    """The scales the zoo file lacks: on the first training forward each weight
    quantizer starts at s = init_mult * std(w) (3 for the 4-bit body, 12 for the 8-bit
    first and last layers), computed here from the loaded weights."""
    name, model, fp_state = loaded
    if name != 'retinanet_r50_fpn_1x_coco':
        pytest.skip('one detector is enough for the initialization rule')
    layers = {n: m for n, m in model.named_modules() if isinstance(m, (QConv2d, QLinear))}
    assert not any(m.weight_quantizer.is_initialized for m in layers.values())
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData
    sample = DetDataSample(metainfo=dict(img_shape=(64, 64), pad_shape=(64, 64),
                                         batch_input_shape=(64, 64), scale_factor=(1, 1)))
    sample.gt_instances = InstanceData(bboxes=torch.tensor([[8., 8., 40., 48.]]),
                                       labels=torch.tensor([3]))
    model.train()
    torch.manual_seed(0)
    losses = model.loss(torch.randn(1, 3, 64, 64), [sample])
    assert all(torch.isfinite(v).all() for v in losses.values() if torch.is_tensor(v))
    eight_bit = {'backbone.conv1', 'bbox_head.retina_cls', 'bbox_head.retina_reg'}
    for n, m in layers.items():
        w = fp_state[f'{n}.weight'].double()
        mult = 12.0 if n in eight_bit else 3.0
        assert m.weight_quantizer.is_initialized
        assert m.weight_quantizer.bits == (8 if n in eight_bit else 4)
        assert float(m.weight_quantizer.scale) == pytest.approx(mult * float(w.std()),
                                                                rel=1e-5), n
