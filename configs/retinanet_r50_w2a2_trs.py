# W2A2 RetinaNet-R50 QAT with TR scheduling: retinanet_r50_w4a4_trs.py with a 2-bit body
# (twin of retinanet_r50_w2a2_sgd.py). R^0 is measured under the ordinary LR as at W4A4.
_base_ = ['./retinanet_r50_w4a4_trs.py']
model = dict(quant_cfg=dict(w_bits=2, a_bits=2))
