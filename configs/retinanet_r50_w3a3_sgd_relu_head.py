_base_ = ['./retinanet_r50_w4a4_sgd_relu_head.py']
model = dict(quant_cfg=dict(w_bits=3, a_bits=3))
