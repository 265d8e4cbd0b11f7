# W4A4 QAT of the light-model RetinaNet with TR scheduling over SGD ("SGDT"): weight
# scales frozen (paper footnote 2), the TALR U drives the quantized latent weights, the
# target R is cosine-decayed to 0 over the run. Same start point, iterations and cosine
# LR schedule as retinanet_mbv2_w4a4_sgd_demo.py, with its own base LR (below).
# R^0 = auto_target_scale x the running TR measured under the ordinary LR over the first
# 30 steps (3: the shipped recipe, docs/tr_scheduling.md); U^0 = the ordinary LR.
# eta_adapt_iters=10: with the R18 demo's 50, K drifted to 13x R late in the run on this
# model; with 10, K/R stays near 1. controller='log' is the beyond-the-paper variant.
_base_ = ['./retinanet_mbv2_w4a4_sgd_demo.py']

model = dict(quant_cfg=dict(learn_weight_scale=False))
optim_wrapper = dict(
    type='TRSOptimWrapper',
    constructor='TRSOptimWrapperConstructor',  # gives quantized weights their own groups
    tr_momentum=0.9,        # m of Eq. 10 (0.99 lags a 600-step cosine target)
    init_talr=None,         # U^0 = the ordinary LR when the measurement ends
    eta='auto',             # U^0 / (R^0 * eta_adapt_iters)
    init_target='auto',     # R^0 measured under the ordinary LR ...
    auto_target_scale=3.0,  # ... times this factor (the shipped recipe)
    auto_target_iters=30,
    eta_adapt_iters=10,
    controller='additive',  # the paper's Eq. 11 ('log': multiplicative, beyond the paper)
    per_layer=False,
    bias_correction=True,
    # The ordinary LR (and U^0): 0.027, a third of the SGD config's 0.081. SGDT's own
    # two-knob grid at W4A4 (benchmarks/recipe_study.py --bits 4, report
    # docs/results/recipe_study_w4a4_grids.md) selected it with R^0 x3, inside a 4x4 grid.
    optimizer=dict(lr=0.027))
# the LR schedule of the SGD config, plus the target TR R^t = R^0 * cosine(t) -> 0
param_scheduler = _base_.param_scheduler + [
    dict(type='CosineAnnealingParamScheduler', param_name='target_tr', by_epoch=False,
         begin=0, end=_base_.max_iters, T_max=_base_.max_iters, eta_min=0.0),
]
# the TALR of every step into <work_dir>/talr_trajectory.json (TALRReplayOptimWrapper
# replays it on a plain optimizer)
custom_hooks = _base_.custom_hooks + [dict(type='TALRRecorderHook')]
