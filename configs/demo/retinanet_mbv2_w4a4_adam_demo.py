# W4A4 QAT of the light-model RetinaNet with plain Adam (the paper's "Adam" baseline of
# its Table 2): retinanet_mbv2_w4a4_sgd_demo.py with Adam instead of SGD. LR 2.7e-3 (not
# from the paper): Adam's one-knob selection in benchmarks/light_study.py and AdamT's
# two-knob one in benchmarks/recipe_study.py (x27 of the usual fine-tuning LR 1e-4).
_base_ = ['./retinanet_mbv2_w4a4_sgd_demo.py']

optim_wrapper = dict(
    optimizer=dict(_delete_=True, type='Adam', lr=2.7e-3, betas=(0.9, 0.999),
                   weight_decay=0.0))
