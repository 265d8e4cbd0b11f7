# W4A4 RetinaNet-R50 QAT with plain SGD plus one of the seeds' oscillation remedies;
# differs from retinanet_r50_w4a4_sgd.py only in this hook's keys.
# Iterative weight freezing (Nagel et al., ICML 2022): weights whose oscillation
# frequency exceeds a threshold (off for the first 25%, then cosine 0.1 -> 0.01) are
# frozen at their EMA level (mmtrs/engine/seed_method_hooks.py, docs/methods.md).
_base_ = ['./retinanet_r50_w4a4_sgd.py']

custom_hooks = [
    dict(type='FiniteLossHook'),
    dict(type='TransitionRateHook', interval=500),
    dict(type='OscillationFreezingHook', momentum=0.001, start=0.25, threshold_start=0.1,
         threshold_end=0.01, max_bits=4),
]
