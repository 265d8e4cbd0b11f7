# Drop-in TR scheduling without a hand-set target: R^0 is the running TR measured
# under the ordinary LR during the first 30 steps; eta = U^0 / (R^0 * 50).
_base_ = ['./retinanet_r18_w4a4_trs_demo.py']
optim_wrapper = dict(init_talr=None, eta='auto', init_target='auto', auto_target_iters=30,
                     eta_adapt_iters=50, bias_correction=True)
