# W4A4 QAT of the demo RetinaNet with plain SGD (the paper's "SGD" baseline): weight and
# activation scales learnable, LR 3e-3 cosine to 0, 300 iterations from the FP demo
# weights. The TransitionRateHook measures the TR that plain SGD produces.
_base_ = ['./retinanet_r18_fp_demo.py', '../_base_/quant/w4a4.py']

model = dict(type='QuantizedDetector', detector_type='RetinaNet',
             quant_cfg={{_base_.quant_cfg}})
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
# momentum: the m used to measure plain SGD's running TR, equal to the SGDT twin's
custom_hooks = [dict(type='FiniteLossHook'),
                dict(type='TransitionRateHook', interval=50, momentum=0.9)]
