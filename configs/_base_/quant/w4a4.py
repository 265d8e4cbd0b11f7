# Quantization policy W4A4 (see docs/quantization.md for every key).
# First backbone conv and final cls/reg convs at 8 bit (common QAT-detection practice;
# the paper does not state it). Set first_layer/last_layers=None to keep them FP.
# Scale init: 3 std for the low-bit body (EWGS/LTS default), 12 std for the 8-bit layers
# (3 std clips too much at 8 bits: docs/results.md).
quant_cfg = dict(
    w_bits=4, a_bits=4,
    init_mult=3.0,
    first_layer=dict(w_bits=8, a_bits=8, init_mult=12.0),
    last_layers=dict(w_bits=8, a_bits=8, init_mult=12.0),
    act_signed='auto',
    learn_weight_scale=True,
    learn_act_scale=True)
