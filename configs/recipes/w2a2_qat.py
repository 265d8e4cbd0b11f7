# One-step recipe, W2A2 QAT with the detector config's own optimizer and schedule:
#   _base_ = ['my_detector.py', '<mmtrs configs>/recipes/w2a2_qat.py']
#   load_from = 'my_fp_detector.pth'
# (docs/quantization.md "Quantize your own detector").
_base_ = ['../_base_/quant/w2a2.py', '../_base_/quant/recipe.py']
