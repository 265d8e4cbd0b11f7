# TR scheduling with hand-set values, those of an early calibration on the demo
# (docs/tr_scheduling.md: U^0 = 3e-3, R^0 = 1e-4 cosine-decayed to 0, eta = 0.6), with the paper's
# plain Eq. 11 (no bias correction). On this demo plain SGD moves ~3e-4 of the weights
# per step, so K overshoots R^0 and U hits 0 early (docs/results.md).
_base_ = ['./retinanet_r18_w4a4_trs_demo.py']
optim_wrapper = dict(init_talr=3e-3, eta=0.6, init_target=1e-4, bias_correction=False)
