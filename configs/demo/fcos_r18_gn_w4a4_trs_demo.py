# W4A4 FCOS with TR scheduling and no batch-coupled layer: GN in the backbone and head,
# no norm in the FPN, and a head (FCOSHead) whose loss normalizers (number of positives,
# centerness sum) are averaged over processes (mmdet's reduce_mean). For this model an
# N-process run with batch B per process computes the same gradients as a 1-process run
# with batch N*B, up to floating-point summation order, which the multi-process test
# checks. The RetinaNet demo cannot: BN statistics are per process (SyncBN needs CUDA)
# and RetinaHead normalises its loss by each process's own positives.
# Trained from scratch (no FP checkpoint with GN exists in the demo), 300 iterations.
_base_ = [
    '../_base_/datasets/synthetic_coco.py',
    'mmdet::_base_/default_runtime.py',
]
custom_imports = dict(imports=['mmtrs'], allow_failed_imports=False)

gn = dict(type='GN', num_groups=8, requires_grad=True)
model = dict(
    type='QuantizedDetector',
    detector_type='FCOS',
    # the defaults of docs/quantization.md (8-bit first/last layers), scales frozen
    quant_cfg=dict(w_bits=4, a_bits=4, learn_weight_scale=False),
    data_preprocessor=dict(
        type='DetDataPreprocessor', mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True, pad_size_divisor=32),
    backbone=dict(
        type='ResNet', depth=18, base_channels=32, num_stages=4, out_indices=(0, 1, 2, 3),
        frozen_stages=-1, norm_cfg=gn, norm_eval=False, style='pytorch', init_cfg=None),
    neck=dict(
        type='FPN', in_channels=[32, 64, 128, 256], out_channels=64, start_level=1,
        add_extra_convs='on_output', num_outs=5, relu_before_extra_convs=True),
    bbox_head=dict(
        type='FCOSHead', num_classes=5, in_channels=64, stacked_convs=2, feat_channels=64,
        strides=[8, 16, 32, 64, 128], norm_cfg=dict(type='GN', num_groups=16,
                                                    requires_grad=True),
        loss_cls=dict(type='FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25,
                      loss_weight=1.0),
        loss_bbox=dict(type='IoULoss', loss_weight=1.0),
        loss_centerness=dict(type='CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0)),
    test_cfg=dict(nms_pre=1000, min_bbox_size=0, score_thr=0.05,
                  nms=dict(type='nms', iou_threshold=0.5), max_per_img=100))

max_iters = 300
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
optim_wrapper = dict(
    type='TRSOptimWrapper',
    constructor='TRSOptimWrapperConstructor',
    optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=1e-4),
    clip_grad=dict(max_norm=10, norm_type=2),
    tr_momentum=0.9,
    init_talr=None,
    eta='auto',
    init_target='auto',
    auto_target_scale=3.0,
    auto_target_iters=30,
    eta_adapt_iters=50,
    per_layer=False,
    bias_correction=True)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=50),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=0, end=max_iters, T_max=max_iters,
         eta_min=0.0),
    dict(type='CosineAnnealingParamScheduler', param_name='target_tr', by_epoch=False,
         begin=0, end=max_iters, T_max=max_iters, eta_min=0.0),
]
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=20),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=100, max_keep_ckpts=2))
log_processor = dict(by_epoch=False)
vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='DetLocalVisualizer', vis_backends=vis_backends, name='visualizer')
randomness = dict(seed=0)
custom_hooks = [dict(type='FiniteLossHook'),
                dict(type='TransitionRateHook', interval=50, momentum=0.9)]
