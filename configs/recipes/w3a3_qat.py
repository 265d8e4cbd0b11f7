# One-step recipe, W3A3 QAT with the detector config's own optimizer and schedule:
#   _base_ = ['my_detector.py', '<mmtrs configs>/recipes/w3a3_qat.py']
#   load_from = 'my_fp_detector.pth'
# (docs/quantization.md "Quantize your own detector").
_base_ = ['../_base_/quant/w3a3.py', '../_base_/quant/recipe.py']
