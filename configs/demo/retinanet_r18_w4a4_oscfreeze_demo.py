# W4A4 QAT of the demo RetinaNet with plain SGD plus one of the seeds' oscillation
# remedies. Iterative weight freezing (Nagel et al., ICML 2022): weights whose oscillation
# frequency exceeds a threshold (off for the first 25%, then cosine 0.1 -> 0.01) are
# frozen at their EMA level (mmtrs/engine/seed_method_hooks.py, docs/methods.md).
# Everything else as retinanet_r18_w4a4_sgd_demo.py. The oscillation EMA uses m = 0.01
# (Nagel et al.'s code default) instead of the paper's 0.001: this run has 300 steps.
_base_ = ['./retinanet_r18_w4a4_sgd_demo.py']

custom_hooks = [
    dict(type='FiniteLossHook'),
    dict(type='TransitionRateHook', interval=50, momentum=0.9),
    dict(type='OscillationFreezingHook', momentum=0.01, start=0.25, threshold_start=0.1,
         threshold_end=0.01, max_bits=4),
]
