# W3A3 twin of retinanet_mbv2_w4a4_lts_demo.py: retinanet_mbv2_w3a3_sgd_demo.py
# plus the same hooks.
_base_ = ['./retinanet_mbv2_w4a4_lts_demo.py']
model = dict(quant_cfg=dict(w_bits=3, a_bits=3))
