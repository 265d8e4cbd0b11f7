# W4A4 RetinaNet-R50 QAT with plain SGD plus one of the seeds' oscillation remedies;
# differs from retinanet_r50_w4a4_sgd.py only in this hook's keys.
# Oscillation-aware bin regularisation, OBR (Quantization Variation, seed 003):
# loss_obr = lambda(t) * sum of [MSE to the bin centres + within-bin variances],
# lambda 0 for 25% of training, then cosine to 0.01 (docs/methods.md).
_base_ = ['./retinanet_r50_w4a4_sgd.py']

custom_hooks = [
    dict(type='FiniteLossHook'),
    dict(type='TransitionRateHook', interval=500),
    dict(type='OscillationTrackingHook', momentum=0.001),
    dict(type='BinRegularizationHook', lambda_max=0.01, start=0.25),
]
