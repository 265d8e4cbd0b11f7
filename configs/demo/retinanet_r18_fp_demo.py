# FP RetinaNet for the CPU demo: a narrow ResNet-18 (base_channels=32, no pretrained
# weights: nothing is downloaded) + FPN with BN + a shared 2-conv head with GN, trained
# from scratch on the synthetic COCO set. Its final weights are the starting point of
# every quantized demo config (see `load_from` there).
_base_ = [
    'mmdet::_base_/models/retinanet_r50_fpn.py',
    '../_base_/datasets/synthetic_coco.py',
    'mmdet::_base_/default_runtime.py',
]
custom_imports = dict(imports=['mmtrs'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        depth=18, base_channels=32, frozen_stages=-1, norm_eval=False, init_cfg=None),
    neck=dict(
        in_channels=[32, 64, 128, 256], out_channels=64, start_level=1,
        norm_cfg=dict(type='BN', requires_grad=True)),
    bbox_head=dict(
        num_classes=5, in_channels=64, feat_channels=64, stacked_convs=2,
        norm_cfg=dict(type='GN', num_groups=16, requires_grad=True),
        # objects start at ~12 px: anchors of 2-3 x stride instead of 4-6 x
        anchor_generator=dict(octave_base_scale=2)))

max_iters = 1000
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.03, momentum=0.9, weight_decay=1e-4),
    clip_grad=dict(max_norm=10, norm_type=2))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=100),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=0, end=max_iters, T_max=max_iters,
         eta_min=0.0),
]
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=20),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=max_iters,
                    max_keep_ckpts=2))
log_processor = dict(by_epoch=False)
vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='DetLocalVisualizer', vis_backends=vis_backends, name='visualizer')
randomness = dict(seed=0)
auto_scale_lr = dict(enable=False, base_batch_size=8)
custom_hooks = [dict(type='FiniteLossHook')]
