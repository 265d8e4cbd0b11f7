"""Deployable export of quantized detectors (docs/export.md): the int8 deployment ONNX
(QLinearConv in onnxruntime), QDQ ONNX (int8 containers), INT4 ONNX and a packed
integer checkpoint, with the tools to check them against the fake-quant model. `custom_imports=dict(imports=['mmtrs', 'mmtrs.export'])`
registers ONNXRuntimeDetector; onnx/onnxruntime are imported only when used."""
from .calibration import dataset_batches
from .errors import ExportError
from .int8_deploy import count_fusion, to_int8
from .int8_grid import quantizer_grid, uint8_grid
from .layers import QuantLayer, collect_quant_layers
from .loading import build_detector, load_qat_checkpoint, read_state_dict
from .onnx_detector import ONNXRuntimeDetector, make_session, run_network
from .onnx_export import export_network, read_quant_tensors, to_int4
from .packed import (load_packed, pack_nibbles, packed_levels, rebuild_from_packed,
                     save_packed, unpack_nibbles)

__all__ = ['dataset_batches', 'count_fusion', 'to_int8', 'quantizer_grid', 'uint8_grid',
           'ExportError', 'QuantLayer', 'collect_quant_layers', 'build_detector',
           'load_qat_checkpoint', 'read_state_dict', 'ONNXRuntimeDetector', 'make_session',
           'run_network', 'export_network', 'read_quant_tensors', 'to_int4', 'load_packed',
           'pack_nibbles', 'packed_levels', 'rebuild_from_packed', 'save_packed',
           'unpack_nibbles']
