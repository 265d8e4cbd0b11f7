# retinanet_r50_w4a4_sgd.py plus iterative weight freezing (Nagel et al., ICML 2022,
# Sec. 4.2): weights whose oscillation frequency exceeds a threshold (off for the first
# 25%, then cosine 0.1 -> 0.01) are frozen at their EMA level (docs/methods.md); the
# freezing hook tracks oscillations itself. Differs from the SGD config only in its hooks.
_base_ = ['./retinanet_r50_w4a4_sgd.py']

custom_hooks = _base_.custom_hooks + [
    dict(type='OscillationFreezingHook', momentum=0.001, start=0.25, threshold_start=0.1,
         threshold_end=0.01, max_bits=4),
]
