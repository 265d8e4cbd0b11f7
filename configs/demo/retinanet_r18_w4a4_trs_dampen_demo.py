# TR scheduling (SGDT) plus oscillation dampening (Nagel et al., ICML 2022): the remedy
# hooks compose with any optimizer wrapper. retinanet_r18_w4a4_trs_demo.py plus the hook
# of retinanet_r18_w4a4_dampen_demo.py.
_base_ = ['./retinanet_r18_w4a4_trs_demo.py']

custom_hooks = _base_.custom_hooks + [
    dict(type='OscillationDampeningHook', lambda_max=0.1, start=0.25),
]
