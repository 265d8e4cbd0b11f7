# Quantization policy W2A2: the W4A4 policy (8-bit first conv and final cls/reg convs,
# 3-std scale init for the body) with a 2-bit body. A 2-bit weight has 4 levels
# (-2..1, Eq. 13), a 2-bit activation 4 levels (0..3).
_base_ = ['./w4a4.py']
quant_cfg = dict(w_bits=2, a_bits=2)
