# The paper's FP model (Sec. 5.1): FP RetinaNet-R50 with BN in FPN and head, and the
# paper's head, ReLURetinaHead: shared across FPN levels, with a ReLU on the FPN
# features so that every activation quantizer of the head sees non-negative input.
# Train it (1x) like retinanet_r50_fpn_bn_fp.py and copy the final checkpoint to
# checkpoints/retinanet_r50_fpn_bn_relu_head_fp_coco.pth (start of the *_relu_head QAT
# configs).
_base_ = ['./retinanet_r50_fpn_bn_fp.py']
model = dict(bbox_head=dict(type='ReLURetinaHead'))
