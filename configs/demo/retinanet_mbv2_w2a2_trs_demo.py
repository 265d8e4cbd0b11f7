_base_ = ['./retinanet_mbv2_w4a4_trs_demo.py']
model = dict(quant_cfg=dict(w_bits=2, a_bits=2))
# The ordinary LR (and U^0): 0.027, as at W4A4 and W3A3. SGDT's own
# two-knob grid at W2A2 (benchmarks/recipe_study.py --bits 2 --methods SGD,SGDT, report
# docs/results/recipe_study_w2a2_grids.md) selected it with R^0 x3, inside a 4x4 grid.
optim_wrapper = dict(optimizer=dict(lr=0.027))
