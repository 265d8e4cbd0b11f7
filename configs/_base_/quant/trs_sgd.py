# TR scheduling on top of SGD (the paper's "SGDT"). The TALR replaces the LR of the
# quantized latent weights only; everything else keeps `lr` and its schedule.
# `target_tr` is a param-group key scheduled by MMEngine ParamSchedulers
# (param_name='target_tr'); the detection configs add the schedulers.
optim_wrapper = dict(
    type='TRSOptimWrapper',
    constructor='TRSOptimWrapperConstructor',
    tr_momentum=0.99,      # m, Eq. 10
    init_talr=None,        # U^0; None = optimizer lr
    eta=None,              # eta, Eq. 11; None = optimizer lr; 'auto' = U^0/(R^0*eta_adapt_iters)
    init_target=1e-2,      # R^0 (float) or 'auto' (measured under the ordinary LR)
    auto_target_iters=100,
    eta_adapt_iters=200,
    per_layer=False,
    bias_correction=False)
custom_hooks = [dict(type='TransitionRateHook', interval=50)]
