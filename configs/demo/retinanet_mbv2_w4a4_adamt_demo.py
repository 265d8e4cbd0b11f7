# W4A4 QAT of the light-model RetinaNet with TR scheduling over Adam ("AdamT"): the TALR
# U scales Adam's unit-LR direction m_hat / (sqrt(v_hat) + eps) for the quantized latent
# weights (Eq. 12); every other parameter keeps Adam's scheduled LR. TR keys as in
# retinanet_mbv2_w4a4_trs_demo.py but R^0 = 1x the TR measured under the ordinary LR
# (the paper's form): over Adam, the recipe study's grid selected x1 at LR 2.7e-3 (SGDT's:
# x3), docs/tr_scheduling.md.
_base_ = ['./retinanet_mbv2_w4a4_adam_demo.py']

model = dict(quant_cfg=dict(learn_weight_scale=False))
optim_wrapper = dict(
    type='TRSOptimWrapper',
    constructor='TRSOptimWrapperConstructor',
    tr_momentum=0.9,
    init_talr=None,
    eta='auto',
    init_target='auto',
    auto_target_scale=1.0,  # the shipped recipe over Adam
    auto_target_iters=30,
    eta_adapt_iters=10,
    controller='additive',
    per_layer=False,
    bias_correction=True)
# the LR schedule of the Adam config, plus the target TR R^t = R^0 * cosine(t) -> 0
param_scheduler = _base_.param_scheduler + [
    dict(type='CosineAnnealingParamScheduler', param_name='target_tr', by_epoch=False,
         begin=0, end=_base_.max_iters, T_max=_base_.max_iters, eta_min=0.0),
]
# the TALR of every step into <work_dir>/talr_trajectory.json (TALRReplayOptimWrapper
# replays it on a plain optimizer)
custom_hooks = _base_.custom_hooks + [dict(type='TALRRecorderHook')]
