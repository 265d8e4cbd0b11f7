# W4A4 QAT with plain SGD of MMDetection's stock ATSS-R50 1x (GN in the head), started
# from its model-zoo checkpoint: the one-step recipe (../recipes/w4a4_qat.py) on the
# stock config, with the QAT schedule of configs/retinanet_r50_w4a4_sgd.py (90k
# iterations, batch 16, 500-iteration warm-up, cosine to 0; the config's own optimizer:
# SGD lr 0.01).
# Every key of the zoo file is used; the quantizer scales, which it cannot contain, are
# set from the first training batch (tests/test_own_detector_zoo.py).
_base_ = ['mmdet::atss/atss_r50_fpn_1x_coco.py', '../recipes/w4a4_qat.py']
# Provide this file (MMDetection's model zoo: the released weights of the base config);
# nothing is downloaded.
load_from = 'checkpoints/atss_r50_fpn_1x_coco_20200209-985f7bd0.pth'

# every stage trains (the zoo model froze the stem and layer1): a quantized layer whose
# weights and scales never move cannot adapt to its grid
model = dict(backbone=dict(frozen_stages=-1))
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=90000,
                 val_interval=10000)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=500),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=0, end=90000, T_max=90000,
         eta_min=0.0),
]
default_hooks = dict(checkpoint=dict(by_epoch=False, interval=10000, max_keep_ckpts=3))
log_processor = dict(by_epoch=False)
