# W4A4 QAT of the demo RetinaNet with plain SGD plus one of the seeds' oscillation
# remedies. Oscillation dampening (Nagel et al., ICML 2022): loss_dampen = lambda(t) * sum of
# (sg(w_q) - clip(w))^2 (kernel mean), lambda 0 for 25% of training, then cosine to 0.1
# (mmtrs/engine/regularizer_hooks.py, docs/methods.md).
# Everything else as retinanet_r18_w4a4_sgd_demo.py. The oscillation EMA uses m = 0.01
# (Nagel et al.'s code default) instead of the paper's 0.001: this run has 300 steps.
_base_ = ['./retinanet_r18_w4a4_sgd_demo.py']

custom_hooks = [
    dict(type='FiniteLossHook'),
    dict(type='TransitionRateHook', interval=50, momentum=0.9),
    dict(type='OscillationTrackingHook', momentum=0.01),
    dict(type='OscillationDampeningHook', lambda_max=0.1, start=0.25),
]
