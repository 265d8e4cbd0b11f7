_base_ = ['./fcos_r50-caffe_fpn_gn-head_1x_coco_w4a4_trs.py']
quant_cfg = dict(w_bits=3, a_bits=3)
