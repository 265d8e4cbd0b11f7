"""Deployable export of quantized detectors (docs/export.md): QDQ ONNX (int8
containers), INT4 ONNX, and a packed integer checkpoint, with the tools to check them
against the fake-quant model. `custom_imports=dict(imports=['mmtrs', 'mmtrs.export'])`
registers ONNXRuntimeDetector; onnx/onnxruntime are imported only when used."""
from .errors import ExportError
from .layers import QuantLayer, collect_quant_layers
from .loading import build_detector, load_qat_checkpoint, read_state_dict
from .onnx_detector import ONNXRuntimeDetector, make_session, run_network
from .onnx_export import export_network, read_quant_tensors, to_int4
from .packed import (load_packed, pack_nibbles, packed_levels, rebuild_from_packed,
                     save_packed, unpack_nibbles)

__all__ = ['ExportError', 'QuantLayer', 'collect_quant_layers', 'build_detector',
           'load_qat_checkpoint', 'read_state_dict', 'ONNXRuntimeDetector', 'make_session',
           'run_network', 'export_network', 'read_quant_tensors', 'to_int4', 'load_packed',
           'pack_nibbles', 'packed_levels', 'rebuild_from_packed', 'save_packed',
           'unpack_nibbles']
