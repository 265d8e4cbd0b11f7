# retinanet_r18_w4a4_trs_demo.py with the paper's head (ReLURetinaHead), from the
# paper-head FP demo checkpoint.
_base_ = ['./retinanet_r18_w4a4_trs_demo.py']
model = dict(bbox_head=dict(type='ReLURetinaHead'))
# Written by tools/demo.py --stages relu_head_fp (or train retinanet_r18_relu_head_fp_demo.py
# and copy its final checkpoint here).
load_from = 'work_dirs/demo/retinanet_r18_relu_head_fp_demo.pth'
