_base_ = ['./retinanet_mbv2_w4a4_obr_demo.py']
model = dict(quant_cfg=dict(w_bits=3, a_bits=3))
