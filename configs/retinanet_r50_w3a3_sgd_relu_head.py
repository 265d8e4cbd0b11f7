# retinanet_r50_w3a3_sgd.py on the paper's model: ReLURetinaHead (every activation
# quantizer of the head unsigned), started from the paper-head FP checkpoint.
_base_ = ['./retinanet_r50_w3a3_sgd.py']
model = dict(bbox_head=dict(type='ReLURetinaHead'))
# Provide this file: the final checkpoint of retinanet_r50_fpn_bn_relu_head_fp.py.
load_from = 'checkpoints/retinanet_r50_fpn_bn_relu_head_fp_coco.pth'
