# W4A4 QAT of the demo RetinaNet with TR scheduling ("SGDT"): weight scales frozen, the
# TALR U drives the quantized weights, the target TR R is cosine-decayed to 0.
# Same iterations, LR schedule (for all non-quantized parameters) and start point as
# retinanet_r18_w4a4_sgd_demo.py.
_base_ = ['./retinanet_r18_w4a4_sgd_demo.py']

model = dict(quant_cfg=dict(learn_weight_scale=False))
max_iters = 300
# Calibrated for fine-tuning from FP weights (../shared/METHOD.md, section 2): plain SGD
# at LR 3e-3 moves ~1e-4 of the quantized weights per step, so R^0 = 1e-4 and
# eta = 0.6 (U can change by ~U^0 within ~50 steps of a 100% TR error).
optim_wrapper = dict(
    type='TRSOptimWrapper',
    constructor='TRSOptimWrapperConstructor',  # gives quantized weights their own groups
    tr_momentum=0.99,      # m of Eq. 10
    init_talr=3e-3,        # U^0 (None = optimizer lr)
    eta=0.6,               # eta of Eq. 11 (None = optimizer lr; 'auto' = U^0/(R^0*eta_adapt_iters))
    init_target=1e-4,      # R^0, scheduled below via param_name='target_tr' ('auto' = measured)
    auto_target_iters=100,
    eta_adapt_iters=200,
    per_layer=False,       # one global (K, U) pair
    bias_correction=False)  # the paper's Eq. 11 uses K^t as is
param_scheduler = [
    dict(type='CosineAnnealingLR', by_epoch=False, begin=0, end=max_iters, T_max=max_iters,
         eta_min=0.0),
    dict(type='CosineAnnealingParamScheduler', param_name='target_tr', by_epoch=False,
         begin=0, end=max_iters, T_max=max_iters, eta_min=0.0),
]
