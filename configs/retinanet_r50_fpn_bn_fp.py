# FP RetinaNet-R50 with BN in the FPN and in the shared head: the FP model whose AP the
# paper's FP baseline matches (37.8; stock RetinaNet-R50 1x gives 36.5). MS COCO 2017
# under data/coco/. The starting point of the quantized configs: train it (1x), then
# copy the final checkpoint to checkpoints/retinanet_r50_fpn_bn_fp_coco.pth.
# The backbone loads torchvision's ImageNet ResNet-50 (`torchvision://resnet50`), which
# needs network access or a pre-filled torch hub cache; set
# model.backbone.init_cfg.checkpoint to a local file otherwise.
_base_ = ['mmdet::retinanet/retinanet_r50_fpn_1x_coco.py']
custom_imports = dict(imports=['mmtrs'], allow_failed_imports=False)

norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    neck=dict(norm_cfg=norm_cfg),
    bbox_head=dict(norm_cfg=norm_cfg))
custom_hooks = [dict(type='FiniteLossHook')]
