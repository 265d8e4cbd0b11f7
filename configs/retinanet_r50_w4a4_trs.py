# W4A4 RetinaNet-R50 QAT with TR scheduling (paper Table 4 "SGDT"): same schedule and
# start point as retinanet_r50_w4a4_sgd.py; weight scales frozen (paper footnote 2);
# the TALR drives the quantized latent weights, the target TR is cosine-decayed to 0.
# The paper gives no detection values for R^0 / eta. From FP weights the TR of plain SGD
# is ~1e-4 per step (METHOD.md calibration), so R^0 is measured ('auto') over the first
# 1000 steps under the ordinary LR and eta = U^0 / (R^0 * 1000). To use fixed values set
# optim_wrapper.init_target / eta.
_base_ = ['./retinanet_r50_w4a4_sgd.py']

model = dict(quant_cfg=dict(learn_weight_scale=False))
optim_wrapper = dict(
    type='TRSOptimWrapper',
    constructor='TRSOptimWrapperConstructor',  # gives quantized weights their own groups
    tr_momentum=0.99,       # m of Eq. 10 (paper)
    init_talr=None,         # U^0 = optimizer lr (0.01)
    eta='auto',             # U^0 / (R^0 * eta_adapt_iters)
    init_target='auto',     # R^0 measured under the ordinary LR
    auto_target_iters=1000,
    eta_adapt_iters=1000,
    per_layer=False,
    bias_correction=True)
max_iters = 90000
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=500),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=0, end=max_iters, T_max=max_iters,
         eta_min=0.0),
    dict(type='CosineAnnealingParamScheduler', param_name='target_tr', by_epoch=False,
         begin=0, end=max_iters, T_max=max_iters, eta_min=0.0),
]
custom_hooks = [dict(type='FiniteLossHook'), dict(type='TransitionRateHook', interval=500)]
