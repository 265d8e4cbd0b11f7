# One-step recipe, W2A2 QAT with TR scheduling around the detector config's own
# optimizer (docs/quantization.md "Quantize your own detector").
_base_ = ['./w2a2_qat.py']
quant_recipe = dict(trs=True)
