# retinanet_r18_w4a4_sgd_demo.py plus oscillation-aware bin regularisation, OBR (Huang
# et al., "Quantization Variation", arXiv 2307.00331): loss_obr = lambda(t) * sum of
# [MSE to the bin centres + within-bin variances], lambda 0 for 25% of training, then
# cosine to 0.01 (docs/methods.md). Differs from the SGD config only in its hooks.
_base_ = ['./retinanet_r18_w4a4_sgd_demo.py']

custom_hooks = _base_.custom_hooks + [
    dict(type='BinRegularizationHook', lambda_max=0.01, start=0.25),
]
