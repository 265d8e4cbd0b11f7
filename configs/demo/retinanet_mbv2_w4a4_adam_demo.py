# W4A4 QAT of the light-model RetinaNet with plain Adam (the paper's "Adam" baseline of
# its Table 2): retinanet_mbv2_w4a4_sgd_demo.py with Adam instead of SGD. LR 1e-4 (not
# from the paper: a usual Adam fine-tuning LR; the study tunes it over x{1/3, 1, 3, 9}).
_base_ = ['./retinanet_mbv2_w4a4_sgd_demo.py']

optim_wrapper = dict(
    optimizer=dict(_delete_=True, type='Adam', lr=1e-4, betas=(0.9, 0.999),
                   weight_decay=0.0))
