# TR scheduling (SGDT) plus LTS freezing (SpQAT): frozen weights leave N of Eq. 5 (they
# can no longer transition). retinanet_r18_w4a4_trs_demo.py plus the hook of
# retinanet_r18_w4a4_lts_demo.py.
_base_ = ['./retinanet_r18_w4a4_trs_demo.py']

custom_hooks = _base_.custom_hooks + [
    dict(type='LTSFreezingHook', momentum=0.99, warmup=0.2, tau_schedule='linear',
         tau_max=1.0, max_bits=4),
]
