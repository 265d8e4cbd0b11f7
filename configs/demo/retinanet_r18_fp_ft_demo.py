# The FP demo RetinaNet fine-tuned with exactly the QAT demo schedule (SGD, LR 3e-3
# cosine to 0, 300 iterations from the FP demo weights), without quantization: the FP
# reference of the accuracy study (benchmarks/accuracy.py), so that FP and QAT rows
# differ only in quantization, not in training iterations or schedule. The QAT demo
# configs inherit this schedule (retinanet_r18_w4a4_sgd_demo.py).
_base_ = ['./retinanet_r18_fp_demo.py']

# Written by the FP demo run (tools/demo.py copies it here); change to your own.
load_from = 'work_dirs/demo/retinanet_r18_fp_demo.pth'

max_iters = 300
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
optim_wrapper = dict(optimizer=dict(type='SGD', lr=3e-3, momentum=0.9, weight_decay=1e-4))
param_scheduler = [
    dict(type='CosineAnnealingLR', by_epoch=False, begin=0, end=max_iters, T_max=max_iters,
         eta_min=0.0),
]
default_hooks = dict(
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=100, max_keep_ckpts=2))
