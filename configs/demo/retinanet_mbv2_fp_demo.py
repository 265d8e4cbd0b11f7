# FP RetinaNet with a light backbone for the light-model study
# (benchmarks/light_study.py): MMDetection's MobileNetV2 (inverted residuals with 3x3
# depthwise convs, the layers Nagel et al. find oscillating at 3-4 bits), no pretrained
# weights, + FPN with BN + the shared 2-conv GN head of the R18 demo
# (retinanet_r18_fp_demo.py, whose data, schedule and runtime this inherits), trained from
# scratch on the synthetic COCO set.
# widen_factor 0.5: chosen by timing (docs/results.md, "Light-model study"): per-iteration
# cost on 2 CPU cores at batch 8, 256 px. Outputs: stage 2 (stride 8), stage 4
# (stride 16) and the final 1x1 conv2 (stride 32, 1280 channels: MobileNetV2 always
# computes it, so it feeds P5 rather than sitting unused); P6/P7 are extra convs.
_base_ = ['./retinanet_r18_fp_demo.py']

model = dict(
    backbone=dict(
        _delete_=True, type='MobileNetV2', widen_factor=0.5, out_indices=(2, 4, 7),
        frozen_stages=-1, norm_eval=False, init_cfg=None),
    neck=dict(in_channels=[16, 48, 1280], start_level=0, num_outs=5))

max_iters = 1500
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=100),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=0, end=max_iters, T_max=max_iters,
         eta_min=0.0),
]
default_hooks = dict(
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=max_iters,
                    max_keep_ckpts=2))
