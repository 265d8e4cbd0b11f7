# retinanet_mbv2_w4a4_sgd_demo.py plus oscillation dampening (Nagel et al., ICML 2022;
# the hook of retinanet_r18_w4a4_dampen_demo.py, docs/methods.md), placed before the
# SGD config's last hook, EffectiveStepSizeHook. Differs from it only in its hooks.
_base_ = ['./retinanet_mbv2_w4a4_sgd_demo.py']

custom_hooks = _base_.custom_hooks[:-1] + [
    dict(type='OscillationDampeningHook', lambda_max=0.1, start=0.25),
] + _base_.custom_hooks[-1:]
