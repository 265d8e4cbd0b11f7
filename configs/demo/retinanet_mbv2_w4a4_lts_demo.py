# retinanet_mbv2_w4a4_sgd_demo.py plus LTS freezing (SpQAT; the hook of
# retinanet_r18_w4a4_lts_demo.py, docs/methods.md), placed before the SGD config's last
# hook, EffectiveStepSizeHook. Differs from it only in its hooks.
_base_ = ['./retinanet_mbv2_w4a4_sgd_demo.py']

custom_hooks = _base_.custom_hooks[:-1] + [
    dict(type='LTSFreezingHook', momentum=0.99, warmup=0.2, tau_schedule='linear',
         tau_max=1.0, max_bits=4),
] + _base_.custom_hooks[-1:]
