# One-step recipe, W3A3 QAT with TR scheduling around the detector config's own
# optimizer (docs/quantization.md "Quantize your own detector").
_base_ = ['./w3a3_qat.py']
quant_recipe = dict(trs=True)
