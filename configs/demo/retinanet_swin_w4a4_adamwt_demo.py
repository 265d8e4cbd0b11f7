# W4A4 QAT of the Swin demo RetinaNet with TR scheduling over AdamW ("AdamWT", paper
# Table 3): TRSOptimWrapper wraps AdamW, whose unit-LR direction m_hat/(sqrt(v_hat)+eps)
# is scaled by the TALR U for the quantized latent weights (convs and linears alike);
# every other parameter keeps AdamW's scheduled LR. Weight scales frozen (paper
# footnote 2). TR keys as in retinanet_r18_w4a4_trs_demo.py (R^0 measured over the first
# 30 steps under the ordinary LR, then cosine-decayed to 0).
_base_ = ['./retinanet_swin_w4a4_adamw_demo.py']

model = dict(quant_cfg=dict(learn_weight_scale=False))
optim_wrapper = dict(
    type='TRSOptimWrapper',
    constructor='TRSOptimWrapperConstructor',  # gives quantized weights their own groups
    tr_momentum=0.9,       # as the R18 demo (0.99 lags a 300-step cosine target)
    init_talr=None,        # U^0 = AdamW's LR when the measurement ends
    eta='auto',            # U^0 / (R^0 * eta_adapt_iters)
    init_target='auto',    # R^0 measured under the ordinary LR ...
    auto_target_scale=1.0,  # ... times 1 (the shipped recipe over Adam-type optimizers)
    auto_target_iters=30,
    eta_adapt_iters=50,
    per_layer=False,
    bias_correction=True)
# the LR schedule of the AdamW config, plus the target TR R^t = R^0 * cosine(t) -> 0
param_scheduler = _base_.param_scheduler + [
    dict(type='CosineAnnealingParamScheduler', param_name='target_tr', by_epoch=False,
         begin=0, end=_base_.max_iters, T_max=_base_.max_iters, eta_min=0.0),
]
