# Swin backbones for RetinaNet, defined once for the FP and QAT configs that use them
# (`model = dict(backbone={{_base_.swin_t_backbone}}, neck={{_base_.swin_t_neck}})`).

# Swin-T as in MMDetection's retinanet_swin-t-p4-w7_fpn_1x_coco.py (init_cfg=None: the
# QAT configs load a whole FP detector; the FP config sets the ImageNet file).
swin_t_backbone = dict(
    _delete_=True,
    type='SwinTransformer',
    embed_dims=96,
    depths=[2, 2, 6, 2],
    num_heads=[3, 6, 12, 24],
    window_size=7,
    mlp_ratio=4,
    qkv_bias=True,
    qk_scale=None,
    drop_rate=0.,
    attn_drop_rate=0.,
    drop_path_rate=0.2,
    patch_norm=True,
    out_indices=(1, 2, 3),
    with_cp=False,
    convert_weights=True,
    init_cfg=None)
swin_t_neck = dict(in_channels=[192, 384, 768], start_level=0, num_outs=5)

# A reduced Swin-T for the CPU demo: Swin-T's layout (patch 4, four
# stages, widths doubling, heads doubling) at a third of its width and with 1-1-2-1
# blocks, windows of 8 tokens (a 256 px image gives 64x64 tokens at stride 4, divisible
# by 8). No stochastic depth: the demo model is tiny and a resumed run must repeat the
# uninterrupted one exactly (drop-path draws would differ after a resume).
swin_demo_backbone = dict(
    _delete_=True,
    type='SwinTransformer',
    embed_dims=32,
    depths=[1, 1, 2, 1],
    num_heads=[1, 2, 4, 8],
    window_size=8,
    mlp_ratio=4,
    qkv_bias=True,
    drop_rate=0.,
    attn_drop_rate=0.,
    drop_path_rate=0.,
    patch_norm=True,
    out_indices=(1, 2, 3),    # strides 8, 16, 32, as RetinaNet's FPN uses them
    with_cp=False,
    init_cfg=None)            # trained from scratch: nothing is downloaded
# FPN over all three outputs (mmdet's Swin RetinaNet uses start_level=0 the same way)
swin_demo_neck = dict(in_channels=[64, 128, 256], start_level=0)
# AdamW for Swin, as MMDetection's Swin detectors: no decay on norm parameters and the
# relative-position tables; none on quantizer step sizes either (LSQ practice)
adamw_paramwise_cfg = dict(
    norm_decay_mult=0.0,
    custom_keys={'relative_position_bias_table': dict(decay_mult=0.0),
                 'absolute_pos_embed': dict(decay_mult=0.0),
                 'quantizer.scale': dict(decay_mult=0.0)})
