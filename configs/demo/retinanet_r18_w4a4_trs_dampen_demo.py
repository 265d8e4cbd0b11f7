# TR scheduling (SGDT) plus oscillation dampening: the seed methods compose with any
# optimizer wrapper. Everything else as retinanet_r18_w4a4_trs_demo.py.
_base_ = ['./retinanet_r18_w4a4_trs_demo.py']

custom_hooks = [
    dict(type='FiniteLossHook'),
    dict(type='TransitionRateHook', interval=50, momentum=0.9),
    dict(type='OscillationTrackingHook', momentum=0.01),
    dict(type='OscillationDampeningHook', lambda_max=0.1, start=0.25),
]
