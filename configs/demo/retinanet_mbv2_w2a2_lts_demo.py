# W2A2 twin of retinanet_mbv2_w4a4_lts_demo.py: retinanet_mbv2_w2a2_sgd_demo.py
# plus the same hooks.
_base_ = ['./retinanet_mbv2_w4a4_lts_demo.py']
model = dict(quant_cfg=dict(w_bits=2, a_bits=2))
