_base_ = ['./retinanet_r18_w4a4_trs_demo.py']
model = dict(quant_cfg=dict(w_bits=1, a_bits=1))
