_base_ = ['./retinanet_mbv2_w4a4_trs_demo.py']
model = dict(quant_cfg=dict(w_bits=3, a_bits=3))
# The ordinary LR (and U^0): 0.081, SGDT's selection (with R^0 x3) on its own two-knob grid
# at W3A3 (benchmarks/recipe_study.py, report docs/results/recipe_study.md).
optim_wrapper = dict(optimizer=dict(lr=0.081))
