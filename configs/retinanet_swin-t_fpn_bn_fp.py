# FP RetinaNet with a Swin-T backbone, BN in the FPN and the shared head: the start point
# of the Swin-T QAT configs, built like retinanet_r50_fpn_bn_fp.py with the backbone
# swapped. Train it (1x), then copy the final checkpoint to
# checkpoints/retinanet_swin-t_fpn_bn_fp_coco.pth.
# Provide the ImageNet Swin-T weights (the official release file
# swin_tiny_patch4_window7_224.pth, converted on load by convert_weights=True) at the
# path below: nothing is downloaded at run time.
_base_ = ['./retinanet_r50_fpn_bn_fp.py', './_base_/models/swin.py']

# The backbone of _base_/models/swin.py (swin_t_backbone) with the ImageNet weights (a
# base variable cannot be partly overridden in the file that uses it, hence the copy)
model = dict(
    backbone=dict(
        _delete_=True, type='SwinTransformer', embed_dims=96, depths=[2, 2, 6, 2],
        num_heads=[3, 6, 12, 24], window_size=7, mlp_ratio=4, qkv_bias=True, qk_scale=None,
        drop_rate=0., attn_drop_rate=0., drop_path_rate=0.2, patch_norm=True,
        out_indices=(1, 2, 3), with_cp=False, convert_weights=True,
        init_cfg=dict(type='Pretrained',
                      checkpoint='checkpoints/swin_tiny_patch4_window7_224.pth')),
    neck={{_base_.swin_t_neck}})
# AdamW as MMDetection's Swin-T detectors (lr 1e-4, weight decay 0.05, no decay on norms
# and position tables), with its 1x step schedule
optim_wrapper = dict(
    optimizer=dict(_delete_=True, type='AdamW', lr=1e-4, betas=(0.9, 0.999),
                   weight_decay=0.05),
    paramwise_cfg={{_base_.adamw_paramwise_cfg}})
