"""Model summary for ``qonnx info``: I/O, opsets, op counts, quantizers, parameter memory."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from qonnx_tools._ir import ir
from qonnx_tools.annotations import get_datatype
from qonnx_tools.constants import constant_array
from qonnx_tools.domains import QONNX

#: Quantizer ops and where their parameters are: op -> (bit-width input index or None, scale input index)
_QUANTIZERS: dict[str, tuple[int | None, int | None]] = {
    "IntQuant": (3, 1),
    "Quant": (3, 1),
    "BipolarQuant": (None, 1),
    "FloatQuant": (None, 1),
    "Trunc": (None, 1),  # bit width depends on the version, handled below
    "MultiThreshold": (None, None),
}


@dataclass
class TensorSummary:
    name: str
    dtype: str | None
    shape: list[int | str] | None
    datatype: str | None = None


@dataclass
class QuantizerSummary:
    node: str
    op: str
    role: str  # "weight" (constant input), "activation" or "bias"
    bitwidth: float | None
    signed: bool | None
    narrow: bool | None
    rounding_mode: str | None
    granularity: str  # per-tensor, per-channel(axis=k), blocked, per-element or unknown
    scale_shape: list[int] | None = None
    quantized_elements: int | None = None


@dataclass
class ModelSummary:
    inputs: list[TensorSummary]
    outputs: list[TensorSummary]
    opsets: dict[str, int]
    ir_version: int
    num_nodes: int
    op_counts: dict[str, int]
    quantizers: list[QuantizerSummary] = field(default_factory=list)
    num_parameters: int = 0
    weight_bits_float32: int = 0
    weight_bits_quantized: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def summarize(model: ir.Model) -> ModelSummary:
    """Summarise ``model`` (main graph); counts come straight from the graph's nodes."""
    graph = model.graph
    initializer_names = set(graph.initializers)
    ops = op_counts(model)
    quantizers = [q for q in (_describe_quantizer(node, model) for node in graph) if q is not None]
    params, float_bits, quant_bits = _parameter_memory(graph, quantizers)
    return ModelSummary(
        inputs=[_tensor(v) for v in graph.inputs if v.name not in initializer_names],
        outputs=[_tensor(v) for v in graph.outputs],
        opsets={(d or "ai.onnx"): int(v) for d, v in sorted(model.opset_imports.items())},
        ir_version=int(model.ir_version),
        num_nodes=len(graph),
        op_counts=dict(sorted(ops.items())),
        quantizers=quantizers,
        num_parameters=params,
        weight_bits_float32=float_bits,
        weight_bits_quantized=quant_bits,
    )


def _op_key(node: ir.Node) -> str:
    return node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}:{node.op_type}"


def op_counts(model: ir.Model) -> Counter:
    """Nodes of the main graph per op ("Conv", or "domain:Op" outside the standard domain)."""
    return Counter(_op_key(node) for node in model.graph)


def _tensor(value: ir.Value) -> TensorSummary:
    shape = None if value.shape is None else [d if isinstance(d, int) else str(d) for d in value.shape]
    datatype = get_datatype(value)
    return TensorSummary(
        name=value.name or "",
        dtype=None if value.dtype is None else value.dtype.name,
        shape=shape,
        datatype=None if datatype is None else str(datatype),
    )


def _input(node: ir.Node, index: int) -> ir.Value | None:
    return node.inputs[index] if index < len(node.inputs) else None


def _describe_quantizer(node: ir.Node, model: ir.Model) -> QuantizerSummary | None:
    if node.domain != QONNX or node.op_type not in _QUANTIZERS:
        return None
    attrs = {k: a.value for k, a in node.attributes.items()}
    data = _input(node, 0)
    data_const = constant_array(data)
    role = "activation" if data_const is None else ("bias" if data_const.ndim == 1 else "weight")
    bitwidth, signed, narrow = quantizer_bits(node, model.opset_imports.get(QONNX, 1))
    scale_index = _QUANTIZERS[node.op_type][1]
    scale = constant_array(_input(node, scale_index)) if scale_index is not None else None
    if node.op_type == "MultiThreshold":
        scale = constant_array(_input(node, 1))  # thresholds: one row per channel
        granularity = "per-tensor" if scale is None or scale.shape[0] == 1 else "per-channel(axis=1)"
    else:
        granularity = _granularity(scale, data)
    return QuantizerSummary(
        node=node.name or "",
        op=node.op_type,
        role=role,
        bitwidth=bitwidth,
        signed=signed,
        narrow=narrow,
        rounding_mode=str(attrs["rounding_mode"]).upper() if "rounding_mode" in attrs else None,
        granularity=granularity,
        scale_shape=None if scale is None else list(scale.shape),
        quantized_elements=None if data_const is None else int(data_const.size),
    )


def quantizer_bits(node: ir.Node, qonnx_opset: int = 1) -> tuple[float | None, bool | None, bool | None]:
    """(bit width, signed, narrow) of a QONNX quantizer node, each None when not known.

    Bit widths come from constant inputs (IntQuant/Quant, Trunc, FloatQuant 1+e+m) or
    the threshold count (MultiThreshold); ``qonnx_opset`` selects the Trunc version.
    """
    op = node.op_type
    attrs = {k: a.value for k, a in node.attributes.items()}
    if op in ("IntQuant", "Quant"):
        return _scalar(_input(node, 3)), bool(attrs.get("signed", 1)), bool(attrs.get("narrow", 0))
    if op == "BipolarQuant":
        return 1.0, True, False
    if op == "FloatQuant":
        e, m = _scalar(_input(node, 2)), _scalar(_input(node, 3))
        return (None if e is None or m is None else 1 + e + m), True, None
    if op == "Trunc":
        if qonnx_opset >= 2:
            return _scalar(_input(node, 5)), bool(attrs.get("signed", 1)), bool(attrs.get("narrow", 0))
        return _scalar(_input(node, 4)), None, None
    if op == "MultiThreshold":
        thresholds = constant_array(_input(node, 1))
        if thresholds is None:
            return None, None, None
        levels = thresholds.shape[-1] + 1
        return float(np.ceil(np.log2(levels))) if levels > 1 else 1.0, None, None
    return None, None, None


def _scalar(value: ir.Value | None) -> float | None:
    arr = constant_array(value)
    return None if arr is None or arr.size != 1 else float(arr.reshape(-1)[0])


def _granularity(scale: np.ndarray | None, data: ir.Value | None) -> str:
    if scale is None:
        return "unknown"
    if scale.size == 1:
        return "per-tensor"
    non_unit = [axis for axis, n in enumerate(scale.shape) if n != 1]
    data_shape = None if data is None or data.shape is None else list(data.shape)
    if len(non_unit) == 1:
        axis = non_unit[0]
        if data_shape is not None and len(scale.shape) == len(data_shape):
            dim = data_shape[axis]
            if isinstance(dim, int) and dim != scale.shape[axis]:
                return f"blocked(axis={axis})"
        return f"per-channel(axis={axis})"
    if data_shape is not None and list(scale.shape) == data_shape:
        return "per-element"
    return "blocked"


def _parameter_memory(graph: ir.Graph, quantizers: list[QuantizerSummary]) -> tuple[int, int, int]:
    """(parameter count, bits at float32, bits at quantized widths) over floating-point initializers.

    Quantizer parameters (scales, zero-points, bit widths, thresholds) are not counted
    as parameters; a weight feeding a quantizer counts at that quantizer's bit width.
    """
    quant_params: set[str] = set()
    weight_bits: dict[str, float] = {}
    by_name = {q.node: q for q in quantizers}
    for node in graph:
        q = by_name.get(node.name or "") if node.domain == QONNX else None
        if q is None:
            continue
        for value in node.inputs[1:]:
            if value is not None and value.name:
                quant_params.add(value.name)
        data = _input(node, 0)
        if data is not None and data.name in graph.initializers and q.bitwidth is not None:
            weight_bits[data.name] = q.bitwidth
    count = float_bits = quant_bits = 0
    for name, value in graph.initializers.items():
        tensor = value.const_value
        if tensor is None or name in quant_params or value.dtype is None or not value.dtype.is_floating_point():
            continue
        n = int(np.prod(tensor.shape.numpy())) if tensor.shape is not None else 0
        count += n
        float_bits += 32 * n
        quant_bits += int(round(weight_bits.get(name, value.dtype.bitwidth) * n))
    return count, float_bits, quant_bits
