# W2A2 RetinaNet-R50 QAT with plain SGD: retinanet_r50_w4a4_sgd.py with a 2-bit body.
# Not in the paper's Table 4 (W4A4 and W3A3 only): the regime where the paper's
# classification gains of TR scheduling are largest (MobileNetV2 W2A2 +6.7 top-1).
_base_ = ['./retinanet_r50_w4a4_sgd.py']
model = dict(quant_cfg=dict(w_bits=2, a_bits=2))
