# The light-model W4A4 SGD demo plus iterative weight freezing (Nagel et al.) (docs/methods.md);
# everything else as retinanet_mbv2_w4a4_sgd_demo.py.
_base_ = ['./retinanet_mbv2_w4a4_sgd_demo.py']

custom_hooks = [
    dict(type='FiniteLossHook'),
    dict(type='TransitionRateHook', interval=50, momentum=0.9),
    dict(type='OscillationFreezingHook', momentum=0.01, start=0.25, threshold_start=0.1,
         threshold_end=0.01, max_bits=4),
    dict(type='EffectiveStepSizeHook', interval=10),
]
