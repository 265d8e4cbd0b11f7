# The FP fine-tune of the light-model RetinaNet (retinanet_mbv2_fp_ft_demo.py) with Adam
# instead of SGD, as retinanet_mbv2_w4a4_adam_demo.py does for QAT: the FP reference of
# the Adam rows. benchmarks/recipe_study.py tunes its LR and, through
# FloatWeightLRConstructor, the conv weights' LR multiple, on val.
_base_ = ['./retinanet_mbv2_fp_ft_demo.py']

optim_wrapper = dict(
    optimizer=dict(_delete_=True, type='Adam', lr=2.7e-3, betas=(0.9, 0.999),
                   weight_decay=0.0))
