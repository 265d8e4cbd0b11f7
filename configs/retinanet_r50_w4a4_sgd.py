# W4A4 RetinaNet-R50 QAT with plain SGD (paper Table 4 "SGD"), from the FP checkpoint.
# Schedule (not stated in the paper; common QAT-detection practice): 90k iterations,
# batch 16 (8 GPUs x 2), SGD lr 0.01 momentum 0.9 wd 1e-4, 500-iter warm-up, cosine.
# Weight and activation scales learnable.
_base_ = ['./retinanet_r50_fpn_bn_fp.py', './_base_/quant/w4a4.py']

model = dict(
    type='QuantizedDetector', detector_type='RetinaNet', quant_cfg={{_base_.quant_cfg}},
    # The FP checkpoint provides the backbone: no ImageNet download. Every stage trains
    # (the FP config froze the stem and layer1, as MMDetection does): a quantized layer
    # whose weights and scales never move cannot adapt to its grid. frozen_stages=1
    # also works; frozen layers are then left out of TR scheduling.
    backbone=dict(init_cfg=None, frozen_stages=-1))
# Provide this file: the final checkpoint of configs/retinanet_r50_fpn_bn_fp.py.
load_from = 'checkpoints/retinanet_r50_fpn_bn_fp_coco.pth'

max_iters = 90000
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=max_iters,
                 val_interval=10000)
optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=1e-4))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=500),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=0, end=max_iters, T_max=max_iters,
         eta_min=0.0),
]
default_hooks = dict(checkpoint=dict(by_epoch=False, interval=10000, max_keep_ckpts=3))
log_processor = dict(by_epoch=False)
custom_hooks = [dict(type='FiniteLossHook'), dict(type='TransitionRateHook', interval=500)]
