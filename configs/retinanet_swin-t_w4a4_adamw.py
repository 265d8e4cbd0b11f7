# W4A4 RetinaNet-Swin-T QAT with plain AdamW (the paper's "AdamW" baseline of Table 3,
# on detection): retinanet_r50_w4a4_sgd.py (policy, 90k iterations, warm-up + cosine,
# TR logging) with the Swin-T backbone and neck channels, AdamW, and the Swin-T FP
# checkpoint. The policy quantizes every Conv2d and Linear of the backbone (patch
# embedding conv at 8 bit as the first layer; attention qkv/proj, MLP and patch-merging
# linears at 4 bit); the attention products QK^T and AV stay float
# (docs/quantization.md).
_base_ = ['./retinanet_r50_w4a4_sgd.py', './_base_/models/swin.py']

model = dict(backbone={{_base_.swin_t_backbone}}, neck={{_base_.swin_t_neck}})
# Provide this file: the final checkpoint of configs/retinanet_swin-t_fpn_bn_fp.py.
load_from = 'checkpoints/retinanet_swin-t_fpn_bn_fp_coco.pth'
# AdamW at the FP config's LR, cosine to 0 (not stated in the paper for detection)
optim_wrapper = dict(
    optimizer=dict(_delete_=True, type='AdamW', lr=1e-4, betas=(0.9, 0.999),
                   weight_decay=0.05),
    paramwise_cfg={{_base_.adamw_paramwise_cfg}})
