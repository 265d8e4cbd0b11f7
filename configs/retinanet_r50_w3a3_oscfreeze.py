_base_ = ['./retinanet_r50_w4a4_oscfreeze.py']
model = dict(quant_cfg=dict(w_bits=3, a_bits=3))
