# The light-model W3A3 SGD demo plus OBR (Quantization Variation, seed 003) (docs/methods.md);
# everything else as retinanet_mbv2_w3a3_sgd_demo.py.
_base_ = ['./retinanet_mbv2_w3a3_sgd_demo.py']

custom_hooks = [
    dict(type='FiniteLossHook'),
    dict(type='TransitionRateHook', interval=50, momentum=0.9),
    dict(type='OscillationTrackingHook', momentum=0.01),
    dict(type='BinRegularizationHook', lambda_max=0.01, start=0.25),
    dict(type='EffectiveStepSizeHook', interval=10),
]
