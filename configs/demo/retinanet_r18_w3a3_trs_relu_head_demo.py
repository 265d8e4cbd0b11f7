_base_ = ['./retinanet_r18_w4a4_trs_relu_head_demo.py']
model = dict(quant_cfg=dict(w_bits=3, a_bits=3))
