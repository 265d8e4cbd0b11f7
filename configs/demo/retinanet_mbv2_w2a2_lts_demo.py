# The light-model W2A2 SGD demo plus SpQAT / LTS freezing (seed 002) (docs/methods.md);
# everything else as retinanet_mbv2_w2a2_sgd_demo.py.
_base_ = ['./retinanet_mbv2_w2a2_sgd_demo.py']

custom_hooks = [
    dict(type='FiniteLossHook'),
    dict(type='TransitionRateHook', interval=50, momentum=0.9),
    dict(type='OscillationTrackingHook', momentum=0.01),
    dict(type='LTSFreezingHook', momentum=0.99, warmup=0.2, tau_schedule='linear',
         tau_max=1.0, max_bits=4),
    dict(type='EffectiveStepSizeHook', interval=10),
]
