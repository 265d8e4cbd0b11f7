# W3A3 twin of retinanet_r50_w4a4_dampen.py: retinanet_r50_w3a3_sgd.py plus the same hook
# (the resolved configs differ from it only in the hook's keys).
_base_ = ['./retinanet_r50_w4a4_dampen.py']
model = dict(quant_cfg=dict(w_bits=3, a_bits=3))
