# W4A4 QAT of the demo RetinaNet with plain SGD plus one of the seeds' oscillation
# remedies. SpQAT / LTS freezing (seed 002): weights whose distance-to-level EMA (m 0.99) falls
# below tau(t) bin widths are frozen; tau 0 -> 1 linearly after a 20% warm-up
# (mmtrs/engine/seed_method_hooks.py, docs/methods.md).
# Everything else as retinanet_r18_w4a4_sgd_demo.py. The oscillation EMA uses m = 0.01
# (Nagel et al.'s code default) instead of the paper's 0.001: this run has 300 steps.
_base_ = ['./retinanet_r18_w4a4_sgd_demo.py']

custom_hooks = [
    dict(type='FiniteLossHook'),
    dict(type='TransitionRateHook', interval=50, momentum=0.9),
    dict(type='OscillationTrackingHook', momentum=0.01),
    dict(type='LTSFreezingHook', momentum=0.99, warmup=0.2, tau_schedule='linear',
         tau_max=1.0, max_bits=4),
]
