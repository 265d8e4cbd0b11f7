# retinanet_r50_w4a4_sgd.py plus LTS freezing (SpQAT, "A Sparse Quantization-Aware
# Training Method", ICLR 2023 submission): weights whose distance-to-level EMA (m 0.99)
# falls below tau(t) bin widths are frozen; tau 0 -> 1 linearly after a 20% warm-up
# (docs/methods.md). Differs from the SGD config only in its hooks.
_base_ = ['./retinanet_r50_w4a4_sgd.py']

custom_hooks = _base_.custom_hooks + [
    dict(type='OscillationTrackingHook', momentum=0.001),
    dict(type='LTSFreezingHook', momentum=0.99, warmup=0.2, tau_schedule='linear',
         tau_max=1.0, max_bits=4),
]
