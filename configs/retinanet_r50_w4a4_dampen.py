# W4A4 RetinaNet-R50 QAT with plain SGD plus one of the seeds' oscillation remedies;
# differs from retinanet_r50_w4a4_sgd.py only in this hook's keys.
# Oscillation dampening (Nagel et al., ICML 2022): loss_dampen = lambda(t) * sum of
# (sg(w_q) - clip(w))^2 (kernel mean), lambda 0 for 25% of training, then cosine to 0.1
# (mmtrs/engine/regularizer_hooks.py, docs/methods.md).
_base_ = ['./retinanet_r50_w4a4_sgd.py']

custom_hooks = [
    dict(type='FiniteLossHook'),
    dict(type='TransitionRateHook', interval=500),
    dict(type='OscillationTrackingHook', momentum=0.001),
    dict(type='OscillationDampeningHook', lambda_max=0.1, start=0.25),
]
