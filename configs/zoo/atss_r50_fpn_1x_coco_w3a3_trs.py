_base_ = ['./atss_r50_fpn_1x_coco_w4a4_trs.py']
quant_cfg = dict(w_bits=3, a_bits=3)
