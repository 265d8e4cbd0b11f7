# retinanet_r18_w4a4_sgd_demo.py plus iterative weight freezing (Nagel et al., ICML 2022,
# Sec. 4.2): weights whose oscillation frequency exceeds a threshold (off for the first
# 25%, then cosine 0.1 -> 0.01) are frozen at their EMA level (docs/methods.md). The
# freezing hook tracks oscillations itself (m 0.01, Nagel et al.'s code default, instead
# of the paper's 0.001: this run has 300 steps), so it replaces OscillationTrackingHook.
_base_ = ['./retinanet_r18_w4a4_sgd_demo.py']

custom_hooks = [h for h in _base_.custom_hooks if h.type != 'OscillationTrackingHook'] + [
    dict(type='OscillationFreezingHook', momentum=0.01, start=0.25, threshold_start=0.1,
         threshold_end=0.01, max_bits=4),
]
