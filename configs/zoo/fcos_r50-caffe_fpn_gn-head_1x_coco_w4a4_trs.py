# fcos_r50-caffe_fpn_gn-head_1x_coco_w4a4_sgd.py with TR scheduling around its SGD
# (paper Table 4 "SGDT").
_base_ = ['./fcos_r50-caffe_fpn_gn-head_1x_coco_w4a4_sgd.py']
quant_recipe = dict(trs=True)
