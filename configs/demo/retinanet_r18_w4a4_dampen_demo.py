# retinanet_r18_w4a4_sgd_demo.py plus oscillation dampening (Nagel et al., "Overcoming
# Oscillations in Quantization-Aware Training", ICML 2022, Sec. 4.1): loss_dampen =
# lambda(t) * sum of (sg(w_q) - clip(w))^2 (kernel mean), lambda 0 for 25% of training,
# then cosine to 0.1 (docs/methods.md). Differs from the SGD config only in its hooks.
_base_ = ['./retinanet_r18_w4a4_sgd_demo.py']

custom_hooks = _base_.custom_hooks + [
    dict(type='OscillationDampeningHook', lambda_max=0.1, start=0.25),
]
