# One-step recipe, W4A4 QAT with TR scheduling around the detector config's own
# optimizer (docs/quantization.md "Quantize your own detector").
_base_ = ['./w4a4_qat.py']
quant_recipe = dict(trs=True)
