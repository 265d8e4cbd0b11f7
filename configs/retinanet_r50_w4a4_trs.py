# W4A4 RetinaNet-R50 QAT with TR scheduling (paper Table 4 "SGDT"): same schedule, hooks
# and start point as retinanet_r50_w4a4_sgd.py; weight scales frozen (paper footnote 2);
# the TALR drives the quantized latent weights, the target TR is cosine-decayed to 0.
# The paper gives no detection values for R^0 / eta. From FP weights plain SGD moves
# about 1e-4 of the weights per step, far below the classification defaults, so R^0 is
# measured ('auto') over the first 1000 steps under the ordinary LR and
# eta = U^0 / (R^0 * 1000) (docs/tr_scheduling.md). To use fixed values set
# optim_wrapper.init_target / eta.
_base_ = ['./retinanet_r50_w4a4_sgd.py']

model = dict(quant_cfg=dict(learn_weight_scale=False))
optim_wrapper = dict(
    type='TRSOptimWrapper',
    constructor='TRSOptimWrapperConstructor',  # gives quantized weights their own groups
    tr_momentum=0.99,       # m of Eq. 10 (paper)
    init_talr=None,         # U^0 = optimizer lr (0.01)
    eta='auto',             # U^0 / (R^0 * eta_adapt_iters)
    init_target='auto',     # R^0 measured under the ordinary LR ...
    auto_target_scale=3.0,  # ... times 3 (the shipped recipe)
    auto_target_iters=1000,
    eta_adapt_iters=1000,
    per_layer=False,
    bias_correction=True)
# the LR schedule of the SGD config, plus the target TR R^t = R^0 * cosine(t) -> 0
param_scheduler = _base_.param_scheduler + [
    dict(type='CosineAnnealingParamScheduler', param_name='target_tr', by_epoch=False,
         begin=0, end=_base_.max_iters, T_max=_base_.max_iters, eta_min=0.0),
]
# the TALR of every step into <work_dir>/talr_trajectory.json (TALRReplayOptimWrapper
# replays it on a plain optimizer)
custom_hooks = _base_.custom_hooks + [dict(type='TALRRecorderHook')]
