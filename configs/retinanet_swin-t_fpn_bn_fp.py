# FP RetinaNet with a Swin-T backbone, BN in the FPN and the shared head: the start point
# of the Swin-T QAT configs, built like retinanet_r50_fpn_bn_fp.py with the backbone
# swapped. Train it (1x), then copy the final checkpoint to
# checkpoints/retinanet_swin-t_fpn_bn_fp_coco.pth.
# Provide the ImageNet Swin-T weights (the official release file
# swin_tiny_patch4_window7_224.pth, converted on load by convert_weights=True) at the
# path below: nothing is downloaded at run time.
_base_ = ['./retinanet_r50_fpn_bn_fp.py', './_base_/models/swin.py']

# The Swin-T backbone of _base_/models/swin.py with the ImageNet weights
model = dict(
    backbone=dict(_base_.swin_t_backbone, init_cfg=dict(
        type='Pretrained', checkpoint='checkpoints/swin_tiny_patch4_window7_224.pth')),
    neck={{_base_.swin_t_neck}})
# AdamW as MMDetection's Swin-T detectors (lr 1e-4, weight decay 0.05, no decay on norms
# and position tables), with its 1x step schedule
optim_wrapper = dict(
    optimizer=dict(_delete_=True, type='AdamW', lr=1e-4, betas=(0.9, 0.999),
                   weight_decay=0.05),
    paramwise_cfg={{_base_.adamw_paramwise_cfg}})
