# W4A4 RetinaNet-R50 QAT with plain SGD plus one of the seeds' oscillation remedies;
# differs from retinanet_r50_w4a4_sgd.py only in this hook's keys.
# SpQAT / LTS freezing (seed 002): weights whose distance-to-level EMA (m 0.99) falls
# below tau(t) bin widths are frozen; tau 0 -> 1 linearly after a 20% warm-up
# (mmtrs/engine/seed_method_hooks.py, docs/methods.md).
_base_ = ['./retinanet_r50_w4a4_sgd.py']

custom_hooks = [
    dict(type='FiniteLossHook'),
    dict(type='TransitionRateHook', interval=500),
    dict(type='OscillationTrackingHook', momentum=0.001),
    dict(type='LTSFreezingHook', momentum=0.99, warmup=0.2, tau_schedule='linear',
         tau_max=1.0, max_bits=4),
]
