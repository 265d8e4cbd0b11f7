"""`QuantizedDetector`: build any MMDetection detector, then quantize it by policy.

The config keeps the detector's own keys at the top level of `model`, so a config that
inherits a quantized one and overrides only `model.backbone` gets the new backbone
quantized by the same policy:

    model = dict(type='QuantizedDetector', detector_type='RetinaNet',
                 quant_cfg=dict(w_bits=4, a_bits=4), backbone=..., neck=..., bbox_head=...)
"""
from mmdet.registry import MODELS

from ..quant import build_quant_cfg, quantize_model


@MODELS.register_module()
def QuantizedDetector(detector_type, quant_cfg=None, **detector_kwargs):
    if not isinstance(detector_type, str):
        raise TypeError('model.detector_type must be a registered detector name such as '
                        f"'RetinaNet', got {detector_type!r}")
    build_quant_cfg(quant_cfg)  # a bad key fails before the detector is built
    detector = MODELS.build(dict(type=detector_type, **detector_kwargs))
    quantize_model(detector, quant_cfg)
    return detector
