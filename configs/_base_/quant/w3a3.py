_base_ = ['./w4a4.py']
quant_cfg = dict(w_bits=3, a_bits=3)
