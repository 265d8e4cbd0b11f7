# TR scheduling (SGDT) plus LTS freezing: frozen weights leave N of Eq. 5 (they can no
# longer transition). Everything else as retinanet_r18_w4a4_trs_demo.py.
_base_ = ['./retinanet_r18_w4a4_trs_demo.py']

custom_hooks = [
    dict(type='FiniteLossHook'),
    dict(type='TransitionRateHook', interval=50, momentum=0.9),
    dict(type='OscillationTrackingHook', momentum=0.01),
    dict(type='LTSFreezingHook', momentum=0.99, warmup=0.2, tau_schedule='linear',
         tau_max=1.0, max_bits=4),
]
