# The FP demo RetinaNet with the paper's head (ReLURetinaHead: ReLU on the FPN features
# before the shared head). Start point of the *_relu_head_demo QAT configs.
_base_ = ['./retinanet_r18_fp_demo.py']
model = dict(bbox_head=dict(type='ReLURetinaHead'))
