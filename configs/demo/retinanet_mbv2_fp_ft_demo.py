# The FP light-model RetinaNet (retinanet_mbv2_fp_demo.py) fine-tuned with exactly the
# QAT schedule of the light-model study, without quantization: its FP reference, and the
# schedule every retinanet_mbv2_w*a*_*_demo.py config inherits. 600 iterations (4x the
# 150 of the R18 accuracy study), SGD LR 3e-3 cosine to 0, batch 8.
_base_ = ['./retinanet_mbv2_fp_demo.py']

# Written by the study (benchmarks/light_study.py copies the FP run's final weights here).
load_from = 'work_dirs/demo/retinanet_mbv2_fp_demo.pth'

max_iters = 600
# val every 100 iterations: the study picks the best iteration on val and shows that the
# best SGD run's val AP has stopped improving
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=100)
optim_wrapper = dict(optimizer=dict(type='SGD', lr=3e-3, momentum=0.9, weight_decay=1e-4))
param_scheduler = [
    dict(type='CosineAnnealingLR', by_epoch=False, begin=0, end=max_iters, T_max=max_iters,
         eta_min=0.0),
]
default_hooks = dict(
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=100, max_keep_ckpts=7,
                    save_best='coco/bbox_mAP', rule='greater'))
