# Binary body (paper Sec. 4.3): sign weights in {-1, 1}; activations {0, 1} after ReLUs
# and {-1, 1} (sign) where the input can be negative. First/last layers stay 8-bit.
_base_ = ['./retinanet_r18_w4a4_sgd_demo.py']
model = dict(quant_cfg=dict(w_bits=1, a_bits=1))
