# W4A4 QAT of the demo RetinaNet with plain SGD (the paper's "SGD" baseline): the FP
# fine-tuning schedule of retinanet_r18_fp_ft_demo.py (cosine LR to 0, 300 iterations
# from the FP demo weights) at a tuned LR, with weight and activation quantizers whose
# scales learn. The TransitionRateHook measures the TR that plain SGD produces.
_base_ = ['./retinanet_r18_fp_ft_demo.py', '../_base_/quant/w4a4.py']

model = dict(type='QuantizedDetector', detector_type='RetinaNet',
             quant_cfg={{_base_.quant_cfg}})
# momentum: the m used to measure plain SGD's running TR, equal to the SGDT twin's.
# OscillationTrackingHook only measures (Nagel et al.'s oscillation frequency, m 0.01 for
# this 300-step run), so every method is compared on the same statistic.
custom_hooks = [dict(type='FiniteLossHook'),
                dict(type='TransitionRateHook', interval=50, momentum=0.9),
                dict(type='OscillationTrackingHook', momentum=0.01)]
# The ordinary LR: 0.081 (27x the FP fine-tune's 3e-3). The two-knob grids of
# benchmarks/recipe_study.py --model r18 selected it for SGDT at W4A4 and W3A3 and for
# plain SGD at W4A4 (docs/results.md, "The R18 demo"), so the SGD, SGDT and remedy
# configs that build on this one start from a tuned LR, as the light model's do.
optim_wrapper = dict(optimizer=dict(lr=0.081))
