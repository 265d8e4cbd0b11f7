# W4A4 RetinaNet-Swin-T QAT with TR scheduling over AdamW ("AdamWT", paper Table 3):
# retinanet_swin-t_w4a4_adamw.py with TRSOptimWrapper around AdamW and the TR keys of
# retinanet_r50_w4a4_trs.py. Weight scales frozen (paper footnote 2); the TALR drives the
# quantized latent weights of convs and linears alike.
_base_ = ['./retinanet_swin-t_w4a4_adamw.py']

model = dict(quant_cfg=dict(learn_weight_scale=False))
optim_wrapper = dict(
    type='TRSOptimWrapper',
    constructor='TRSOptimWrapperConstructor',  # gives quantized weights their own groups
    tr_momentum=0.99,       # m of Eq. 10 (paper)
    init_talr=None,         # U^0 = AdamW's LR (1e-4)
    eta='auto',             # U^0 / (R^0 * eta_adapt_iters)
    init_target='auto',     # R^0 measured under the ordinary LR ...
    auto_target_scale=1.0,  # ... times 1 (the shipped recipe over Adam-type optimizers)
    auto_target_iters=1000,
    eta_adapt_iters=1000,
    per_layer=False,
    bias_correction=True)
# the LR schedule of the AdamW config, plus the target TR R^t = R^0 * cosine(t) -> 0
param_scheduler = _base_.param_scheduler + [
    dict(type='CosineAnnealingParamScheduler', param_name='target_tr', by_epoch=False,
         begin=0, end=_base_.max_iters, T_max=_base_.max_iters, eta_min=0.0),
]
# the TALR of every step into <work_dir>/talr_trajectory.json (TALRReplayOptimWrapper
# replays it on a plain optimizer)
custom_hooks = _base_.custom_hooks + [dict(type='TALRRecorderHook')]
