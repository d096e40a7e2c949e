"""onnxruntime and TensorRT readiness rules (QCDQ models)."""

from __future__ import annotations

from qonnx_tools._ir import ir
from qonnx_tools.constants import constant_array
from qonnx_tools.decline import Decline
from qonnx_tools.domains import CHANNELS_LAST, QONNX, canonical_domain
from qonnx_tools.prepare.rules import RESHAPE_ELEMENTS, Rule, any_node, is_op, nonzero_zeropoint, scalar


def _custom(node: ir.Node, model: ir.Model) -> Decline | None:
    domain = canonical_domain(node.domain)
    if domain in (QONNX, CHANNELS_LAST):
        return Decline(f"custom op {domain}:{node.op_type}")
    return None


def _not_int8(node: ir.Node, model: ir.Model) -> Decline | None:
    data = node.inputs[0] if node.inputs else None
    if node.op_type == "DequantizeLinear" and data is not None and data.dtype == ir.DataType.INT32 and (
        constant_array(data) is not None
    ):
        return None  # an int32 bias: TensorRT folds it into the layer
    zp = node.inputs[2] if len(node.inputs) > 2 else None
    if zp is None:
        return None if node.op_type == "DequantizeLinear" else Decline("no zero-point: quantizes to uint8")
    if zp.dtype is not None and zp.dtype != ir.DataType.INT8:
        return Decline(f"zero-point is {zp.dtype.name}", zp)
    return None


def _clip_narrows(node: ir.Node, model: ir.Model) -> Decline | None:
    data = node.inputs[0] if node.inputs else None
    producer = data.producer() if data is not None else None
    if producer is None or producer.op_type != "QuantizeLinear":
        return None
    lo = scalar(node.inputs[1]) if len(node.inputs) > 1 else None
    hi = scalar(node.inputs[2]) if len(node.inputs) > 2 else None
    if lo is None or hi is None:
        return None
    if hi - lo < 254:  # int8 is [-128, 127], narrow int8 [-127, 127]
        return Decline(f"Clip to [{lo:g}, {hi:g}] after QuantizeLinear emulates fewer than 8 bits", producer)
    return None


ORT_RULES = [
    RESHAPE_ELEMENTS,
    Rule("no-custom-ops", any_node, _custom, "onnxruntime runs only standard ONNX ops",
         "qonnx convert --to qcdq (channels-last ops are turned back too); prepare runs it (not with --check-only)"),
]

TENSORRT_RULES = ORT_RULES + [
    Rule("symmetric-zero-point", is_op("QuantizeLinear", "DequantizeLinear"), nonzero_zeropoint,
         "TensorRT supports only symmetric quantization (zero-point 0)",
         "none automatic: re-export with symmetric quantizers (or --target ort)"),
    Rule("int8-only", is_op("QuantizeLinear", "DequantizeLinear"), _not_int8,
         "TensorRT supports only signed 8-bit quantization",
         "none automatic: re-export with signed int8 quantizers (or --target ort)"),
    Rule("8-bit-only", is_op("Clip"), _clip_narrows, "TensorRT runs only 8-bit quantization",
         "none automatic: re-export with 8-bit quantizers, no Clip to a narrower range (or --target ort)"),
]
