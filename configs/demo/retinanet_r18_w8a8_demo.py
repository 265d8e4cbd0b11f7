# W8A8 conversion of the FP demo model, for evaluation right after conversion (no
# training): the de-normalized QConv2d must keep the FP model's AP.
#   python tools/test.py configs/demo/retinanet_r18_w8a8_demo.py \
#       work_dirs/demo/retinanet_r18_fp_demo.pth --calibrate 1
_base_ = ['./retinanet_r18_w4a4_sgd_demo.py']
model = dict(quant_cfg=dict(w_bits=8, a_bits=8, init_mult=12.0))
# 3-sigma clipping (init_mult=3, the low-bit default) costs 8-bit models a lot of AP on
# this demo (0.110 vs FP 0.205); at 8 bits the range can be wide: 6 -> 0.195, 12 -> 0.207.
