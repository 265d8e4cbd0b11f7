# The keys of the one-step recipe (configs/recipes/*.py add a bit-width policy): added
# as a base to any float MMDetection detector config, they make it a quantized one
# without rewriting its model dict. A detector config has none of these keys, so
# MMEngine merges them without a "duplicate key among bases" error; QuantRecipeRunner
# rewrites the loaded config before the Runner is built (mmtrs/apis/quant_recipe.py,
# docs/quantization.md "Quantize your own detector"). The runner is named by its module
# path, which MMEngine's registry imports (and with it mmtrs and all it registers), so
# no custom_imports is needed: it would collide with a detector config's own.
runner_type = 'mmtrs.apis.quant_recipe.QuantRecipeRunner'
quant_recipe = dict(
    # True: TR scheduling (TRSOptimWrapper around the config's own optimizer, weight
    # scales frozen, target TR cosine-decayed to 0 over the run); False: plain QAT.
    trs=False,
    # TRSOptimWrapper keys, those of configs/retinanet_r50_w4a4_trs.py: m of Eq. 10 as in
    # the paper, R^0 = 3x the TR measured under the ordinary LR over the first 1000 steps
    # (the shipped recipe over SGD; over Adam/AdamW set auto_target_scale=1, their
    # selection) and eta = U^0 / (R^0 * 1000) (docs/tr_scheduling.md). A short run wants
    # shorter windows.
    tr=dict(tr_momentum=0.99, init_talr=None, eta='auto', init_target='auto',
            auto_target_scale=3.0, auto_target_iters=1000, eta_adapt_iters=1000,
            per_layer=False, bias_correction=True),
    # TransitionRateHook (logs tr/* scalars), under plain QAT too
    tr_hook=dict(interval=500))
