# W4A4 QAT of the Swin demo RetinaNet with plain AdamW (the paper's "AdamW" of Table 3,
# here on detection): retinanet_r18_w4a4_sgd_demo.py (same W4A4 policy, 300 iterations,
# cosine LR to 0, TR logging) with the backbone and neck channels of the Swin demo and
# AdamW. The policy quantizes every Conv2d and Linear of the backbone: the patch
# embedding conv at 8 bit (first layer), the attention qkv/proj, MLP and patch-merging
# linears at 4 bit. Start point: the final checkpoint of retinanet_swin_fp_demo.py.
_base_ = ['./retinanet_r18_w4a4_sgd_demo.py', '../_base_/models/swin.py']

model = dict(backbone={{_base_.swin_demo_backbone}}, neck={{_base_.swin_demo_neck}})
load_from = 'work_dirs/retinanet_swin_fp_demo/iter_1000.pth'
# AdamW fine-tuning at a tenth of the FP demo's LR (as the R18 QAT demo does for SGD);
# not from the paper
optim_wrapper = dict(
    optimizer=dict(_delete_=True, type='AdamW', lr=1e-4, betas=(0.9, 0.999),
                   weight_decay=0.05),
    paramwise_cfg={{_base_.adamw_paramwise_cfg}})
