"""The paper's head (ReLURetinaHead, Sec. 5.1): every activation quantizer of the head
unsigned, shared across levels, FP checkpoints load with every tensor used."""
import copy
import os.path as osp

import pytest
import torch
from mmengine.config import Config

import mmtrs  # noqa: F401
from mmtrs.models import ReLURetinaHead
from mmtrs.quant import NegativeInputError, QConv2d, calibrate_quantizers

from conftest import ROOT, load_without_warnings


def build(path, **quant_cfg):
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    register_all_modules()
    model = copy.deepcopy(Config.fromfile(osp.join(ROOT, path)).model)
    if quant_cfg:
        model.quant_cfg.update(quant_cfg)
    return MODELS.build(model)


PAPER = 'configs/demo/retinanet_r18_w4a4_sgd_relu_head_demo.py'
STOCK = 'configs/demo/retinanet_r18_w4a4_sgd_demo.py'


def head_quantizers(model):
    return {n: m.act_quantizer for n, m in model.named_modules()
            if isinstance(m, QConv2d) and n.startswith('bbox_head.')}


def calibrate(model):
    x = torch.randn(2, 3, 64, 64)
    calibrate_quantizers(model, lambda: model.bbox_head(model.extract_feat(x)))


def test_every_head_activation_quantizer_is_unsigned():
    torch.manual_seed(0)
    paper, stock = build(PAPER), build(STOCK)
    assert isinstance(paper.bbox_head, ReLURetinaHead)
    calibrate(paper)
    calibrate(stock)
    signed = {n for n, q in head_quantizers(paper).items() if q.signed}
    assert not signed and len(head_quantizers(paper)) == 6   # 2+2 stacked, cls, reg
    # the stock head's first convs see FPN features (lateral sums): signed by 'auto'
    assert {n for n, q in head_quantizers(stock).items() if q.signed} == {
        'bbox_head.cls_convs.0.conv', 'bbox_head.reg_convs.0.conv'}


def test_forcing_unsigned_head_inputs_fails_only_without_the_relu():
    torch.manual_seed(0)
    unsigned = dict(unsigned_act=[r'^bbox_head\.'])
    calibrate(build(PAPER, **unsigned))                    # no NegativeInputError
    with pytest.raises(NegativeInputError, match=r'bbox_head\.(cls|reg)_convs\.0\.conv'):
        calibrate(build(STOCK, **unsigned))


def test_head_is_shared_across_levels_and_is_retinahead_after_a_relu():
    from mmdet.models.dense_heads import RetinaHead
    torch.manual_seed(0)
    paper = build('configs/demo/retinanet_r18_relu_head_fp_demo.py').bbox_head
    stock = build('configs/demo/retinanet_r18_fp_demo.py').bbox_head
    assert type(stock) is RetinaHead
    stock.load_state_dict(paper.state_dict())             # same keys, no extra parameters
    paper.eval(), stock.eval()
    feats = [torch.randn(1, 64, s, s) for s in (16, 8, 4)]
    with torch.no_grad():
        cls_p, reg_p = paper(feats)
        cls_s, reg_s = stock([f.relu() for f in feats])
        same_in = paper([feats[0], feats[0].clone()])
    for a, b in zip(cls_p + reg_p, cls_s + reg_s):
        assert torch.equal(a, b)
    # one set of parameters for every level: equal inputs give equal outputs
    assert torch.equal(same_in[0][0], same_in[0][1])
    n_params = sum(p.numel() for p in paper.parameters())
    assert n_params == sum(p.numel() for p in stock.parameters())


def test_paper_head_fp_checkpoint_loads_into_its_qat_config_with_every_tensor(tmp_path):
    torch.manual_seed(0)
    fp = build('configs/demo/retinanet_r18_relu_head_fp_demo.py')
    ckpt = tmp_path / 'fp.pth'
    torch.save({'state_dict': fp.state_dict(), 'meta': {}}, ckpt)
    q = build(PAPER)
    assert not load_without_warnings(q, ckpt)
    q_sd = q.state_dict()
    for k, v in fp.state_dict().items():
        assert torch.equal(q_sd[k], v), k


@pytest.mark.parametrize('path', ['configs/retinanet_r50_fpn_bn_relu_head_fp.py',
                                  'configs/retinanet_r50_w4a4_sgd_relu_head.py',
                                  'configs/retinanet_r50_w3a3_trs_relu_head.py'])
def test_coco_paper_head_configs_build(path):
    cfg = Config.fromfile(osp.join(ROOT, path))
    assert cfg.model.bbox_head.type == 'ReLURetinaHead'
    model = build(path)
    assert isinstance(model.bbox_head, ReLURetinaHead)
