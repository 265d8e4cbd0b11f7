# retinanet_mbv2_w4a4_sgd_demo.py plus iterative weight freezing (Nagel et al., ICML
# 2022; the hook of retinanet_r18_w4a4_oscfreeze_demo.py, docs/methods.md), which tracks
# oscillations itself: it replaces OscillationTrackingHook and goes before the SGD
# config's last hook, EffectiveStepSizeHook. Differs from it only in its hooks.
_base_ = ['./retinanet_mbv2_w4a4_sgd_demo.py']

custom_hooks = [h for h in _base_.custom_hooks[:-1]
                if h.type != 'OscillationTrackingHook'] + [
    dict(type='OscillationFreezingHook', momentum=0.01, start=0.25, threshold_start=0.1,
         threshold_end=0.01, max_bits=4),
] + _base_.custom_hooks[-1:]
