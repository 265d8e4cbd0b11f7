_base_ = ['./retinanet_mbv2_w4a4_trs_demo.py']
model = dict(quant_cfg=dict(w_bits=3, a_bits=3))
# The ordinary LR (and U^0) is the W4A4 config's 0.027: SGDT's selection (with R^0 x3) on
# its own two-knob grid at W3A3 in the recipe study's regenerating command
# (benchmarks/recipe_study.py --grid SGD:81,243,729:1/27,1/9,1/3 --name
# recipe_study_sgd_sgdt, report docs/results/recipe_study_sgd_sgdt.md). The all-method
# study on another FP start selected 0.081 (docs/results/recipe_study.md): tune it.
