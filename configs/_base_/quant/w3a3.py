# Quantization policy W3A3: the W4A4 policy (8-bit first conv and final cls/reg convs,
# 3-std scale init for the body) with a 3-bit body. A 3-bit weight has 8 levels
# (-4..3, Eq. 13), a 3-bit activation 8 levels (0..7).
_base_ = ['./w4a4.py']
quant_cfg = dict(w_bits=3, a_bits=3)
