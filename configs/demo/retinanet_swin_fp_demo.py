# FP RetinaNet with a reduced Swin-T backbone (configs/_base_/models/swin.py) on the
# synthetic set: the demo R18 model with the backbone swapped and AdamW instead of SGD,
# trained from scratch. Its final checkpoint is the start point of the Swin QAT demos:
#   python tools/train.py configs/demo/retinanet_swin_fp_demo.py
_base_ = ['./retinanet_r18_fp_demo.py', '../_base_/models/swin.py']

model = dict(backbone={{_base_.swin_demo_backbone}}, neck={{_base_.swin_demo_neck}})
# AdamW from scratch (not from the paper): LR 1e-3 with the R18 demo's warm-up and cosine
optim_wrapper = dict(
    optimizer=dict(_delete_=True, type='AdamW', lr=1e-3, betas=(0.9, 0.999),
                   weight_decay=0.05),
    paramwise_cfg={{_base_.adamw_paramwise_cfg}})
