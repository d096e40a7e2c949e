"""Inference cost of a model: MACs, bit operations, weight and activation memory.

``inference_cost(model)`` walks the main graph once (after ``infer-shapes``, which
only adds shape/type information) and reports, per compute layer:

- MACs: Conv ``N * M * prod(out spatial) * (C/group) * prod(kernel)`` (standard
  and channels-last Conv, ConvInteger, QLinearConv); ConvTranspose
  ``N * C * prod(in spatial) * (M/group) * prod(kernel)``; MatMul / Gemm /
  MatMulInteger / QLinearMatMul ``batch * M * K * N``.
- bit operations: MACs x weight bits x activation bits. Each operand's bit width
  comes from the quantizer that produces it, looked up through pure data-movement
  ops (Transpose, Reshape, Flatten, ...): IntQuant/Quant bit width, BipolarQuant 1,
  MultiThreshold ceil(log2(levels)), Trunc output bits, FloatQuant 1+e+m,
  DequantizeLinear after a Clip (QCDQ) the clip range, else the zero-point type;
  else a ``finn_datatype`` annotation; else the element type (32 for float32).
- weight memory: elements of the constant operand x its bit width (each weight
  tensor counted once in the total).
- activation memory: every run-time intermediate tensor (node outputs that depend
  on a graph input) x its bit width.

Totals by datatype pairing (``"INT4 x UINT2"``, activation first) and a list of
nodes that cost is not counted for (ops of unknown cost, or MAC ops whose shapes
are unknown) complete the report.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from qonnx_tools._ir import ir
from qonnx_tools.annotations import get_datatype
from qonnx_tools.constants import constant_array, constant_scalar
from qonnx_tools.domains import CHANNELS_LAST, QONNX, STANDARD, canonical_domain
from qonnx_tools.info import quantizer_bits

#: Ops that move or select data without changing values' bit widths.
_TRANSPARENT = {
    "Transpose", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity", "MaxPool", "Pad",
    "Slice", "Gather", "Split", "Expand", "Tile", "DepthToSpace", "SpaceToDepth", "Resize", "Upsample",
}

#: Ops with no multiply-accumulates worth counting (element-wise, data movement, quantizers, pools, ...).
_NO_MACS = _TRANSPARENT | {
    "Add", "Sub", "Mul", "Div", "Neg", "Abs", "Relu", "LeakyRelu", "PRelu", "Sigmoid", "HardSigmoid",
    "HardSwish", "Tanh", "Elu", "Selu", "Softmax", "LogSoftmax", "Exp", "Log", "Sqrt", "Pow", "Clip",
    "Max", "Min", "Sum", "Mean", "Floor", "Ceil", "Round", "Sign", "Erf", "Gelu", "Not", "And", "Or",
    "Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual", "Where", "Cast", "CastLike", "Concat",
    "Shape", "Size", "Constant", "ConstantOfShape", "Range", "ReduceMean", "ReduceMax", "ReduceMin",
    "ReduceSum", "ArgMax", "ArgMin", "TopK", "AveragePool", "GlobalAveragePool", "GlobalMaxPool",
    "BatchNormalization", "InstanceNormalization", "LayerNormalization", "Dropout", "Reciprocal",
    "QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "IntQuant", "Quant", "BipolarQuant",
    "Trunc", "FloatQuant", "MultiThreshold", "Softplus", "Softsign", "Mod", "IsNaN", "IsInf",
}

_MAC_OPS = {"Conv", "ConvInteger", "QLinearConv", "ConvTranspose", "MatMul", "MatMulInteger", "QLinearMatMul", "Gemm"}

#: op -> (activation operand index, weight operand index)
_OPERANDS = {
    "Conv": (0, 1), "ConvInteger": (0, 1), "ConvTranspose": (0, 1), "MatMul": (0, 1), "Gemm": (0, 1),
    "MatMulInteger": (0, 1), "QLinearConv": (0, 3), "QLinearMatMul": (0, 3),
}


@dataclass(frozen=True)
class OperandType:
    """Bit width and a label of an operand (``INT4``, ``UINT2``, ``BIPOLAR``, ``FLOAT32``)."""

    bits: float
    label: str


@dataclass
class LayerCost:
    node: str
    op: str
    macs: int
    act_type: str
    act_bits: float
    weight_type: str
    weight_bits: float
    bitops: float
    weight_elements: int
    weight_memory_bits: float


@dataclass
class CostReport:
    layers: list[LayerCost] = field(default_factory=list)
    total_macs: int = 0
    total_bitops: float = 0.0
    weight_memory_bits: float = 0.0
    activation_memory_bits: float = 0.0
    by_pairing: dict[str, dict[str, float]] = field(default_factory=dict)
    unsupported: list[str] = field(default_factory=list)
    unknown_shapes: list[str] = field(default_factory=list)
    #: leading dimension of the first graph input (None when symbolic); MACs above are for this batch
    batch: int | None = None
    macs_per_sample: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def inference_cost(model: ir.Model, *, infer_shapes: bool = True) -> CostReport:
    """The cost report of ``model``'s main graph; ``infer_shapes`` first fills in shapes (in place)."""
    if infer_shapes:
        from qonnx_tools.passes.infer_shapes import InferShapes

        InferShapes()(model)
    graph = model.graph
    report = CostReport()
    pairing: dict[str, dict[str, float]] = defaultdict(lambda: {"macs": 0, "bitops": 0.0})
    counted_weights: set[int] = set()
    dynamic = _dynamic_values(graph)
    opset = model.opset_imports
    for node in graph:
        domain = canonical_domain(node.domain)
        op = node.op_type
        label = f"{node.name or '<unnamed>'} ({op})"
        is_mac = op in _MAC_OPS and (domain == STANDARD or (domain == CHANNELS_LAST and op == "Conv"))
        if not is_mac:
            if domain not in (STANDARD, QONNX, CHANNELS_LAST) or op not in _NO_MACS:
                report.unsupported.append(f"{label}: cost of this op is not modelled")
            continue
        macs = _macs(node, domain)
        if macs is None:
            report.unsupported.append(f"{label}: shapes unknown after shape inference, MACs not counted")
            continue
        a_idx, w_idx = _OPERANDS[op]
        act = _operand_type(_input(node, a_idx), opset)
        weight_value = _input(node, w_idx)
        wt = _operand_type(weight_value, opset)
        source = _weight_source(weight_value)
        elements = 0
        if source is not None:
            arr = constant_array(source)
            elements = int(arr.size) if arr is not None else 0
        w_mem = elements * wt.bits
        if source is not None and id(source) not in counted_weights:
            counted_weights.add(id(source))
            report.weight_memory_bits += w_mem
        bitops = float(macs) * act.bits * wt.bits
        report.layers.append(
            LayerCost(node.name or "", op, int(macs), act.label, act.bits, wt.label, wt.bits, bitops, elements, w_mem)
        )
        report.total_macs += int(macs)
        report.total_bitops += bitops
        key = f"{act.label} x {wt.label}"
        pairing[key]["macs"] += int(macs)
        pairing[key]["bitops"] += bitops
    report.by_pairing = {k: dict(v) for k, v in sorted(pairing.items())}
    inputs = [v for v in graph.inputs if v.const_value is None]
    if inputs and inputs[0].shape is not None and len(inputs[0].shape) > 0 and isinstance(inputs[0].shape[0], int):
        report.batch = int(inputs[0].shape[0])
        if report.batch > 0:
            report.macs_per_sample = report.total_macs / report.batch
    for node in graph:
        for value in node.outputs:
            if id(value) not in dynamic:
                continue
            n = _numel(value)
            if n is None:
                report.unknown_shapes.append(value.name or "<unnamed>")
                continue
            report.activation_memory_bits += n * _operand_type(value, opset).bits
    return report


# -- MACs -----------------------------------------------------------------------------------------


def _input(node: ir.Node, index: int) -> ir.Value | None:
    return node.inputs[index] if index < len(node.inputs) else None


def _dims(value: ir.Value | None) -> list[int] | None:
    if value is None or value.shape is None:
        return None
    dims = list(value.shape)
    return dims if all(isinstance(d, int) for d in dims) else None


def _numel(value: ir.Value) -> int | None:
    dims = _dims(value)
    return None if dims is None else int(np.prod(dims, dtype=np.int64))


def _attr(node: ir.Node, key: str, default):
    attr = node.attributes.get(key)
    return default if attr is None else attr.value


def _macs(node: ir.Node, domain: str) -> int | None:
    op = node.op_type
    a_idx, w_idx = _OPERANDS[op]
    x, w, y = _dims(_input(node, a_idx)), _dims(_input(node, w_idx)), _dims(node.outputs[0])
    if op in ("Conv", "ConvInteger", "QLinearConv"):
        if w is None or y is None:
            return None
        spatial = y[1:-1] if domain == CHANNELS_LAST else y[2:]
        return y[0] * w[0] * math.prod(spatial) * w[1] * math.prod(w[2:])
    if op == "ConvTranspose":
        if w is None or x is None:
            return None
        return x[0] * w[0] * math.prod(x[2:]) * w[1] * math.prod(w[2:])  # W is (C, M/group, *kernel)
    if op == "Gemm":
        if x is None or y is None or len(x) != 2:
            return None
        k = x[0] if _attr(node, "transA", 0) else x[1]
        return y[0] * y[1] * k
    # MatMul family: every output element is a K-long dot product.
    if x is None or y is None:
        return None
    k = x[-1]
    return math.prod(y) * k


# -- bit widths -----------------------------------------------------------------------------------


def _through_data_movement(value: ir.Value | None) -> ir.Value | None:
    """Follow ``value`` back through data-movement ops and scalings by constants to where its levels are set."""
    seen = 0
    while value is not None and seen < 10_000:
        seen += 1
        producer = value.producer()
        if producer is None:
            return value
        domain = canonical_domain(producer.domain)
        op = producer.op_type
        if get_datatype(value) is not None:
            return value
        if (domain == STANDARD and op in _TRANSPARENT) or (domain == CHANNELS_LAST and op == "MaxPool"):
            value = producer.inputs[0] if producer.inputs else None
            continue
        if domain == STANDARD and op in ("Mul", "Div") and len(producer.inputs) == 2:
            a, b = producer.inputs
            if constant_array(b) is not None and constant_array(b).size == 1:
                value = a
                continue
            if op == "Mul" and constant_array(a) is not None and constant_array(a).size == 1:
                value = b
                continue
        return value
    return value


def _weight_source(value: ir.Value | None) -> ir.Value | None:
    """The constant tensor a weight operand is computed from (through quantizers and data movement)."""
    for _ in range(64):
        if value is None:
            return None
        if constant_array(value) is not None:
            return value
        producer = value.producer()
        if producer is None or not producer.inputs:
            return None
        value = producer.inputs[0]
    return None


def _operand_type(value: ir.Value | None, opset: dict[str, int]) -> OperandType:
    value = _through_data_movement(value)
    if value is None:
        return OperandType(32.0, "FLOAT32")
    datatype = get_datatype(value)
    if datatype is not None:
        return OperandType(float(datatype.bitwidth), str(datatype))
    producer = value.producer()
    if producer is not None:
        found = _quantizer_type(producer, opset)
        if found is not None:
            return found
    dtype = value.dtype
    if dtype is None:
        return OperandType(32.0, "FLOAT32")
    return OperandType(float(dtype.bitwidth), dtype.name)



def _int_label(bits: float, signed: bool) -> str:
    b = f"{bits:g}"
    return ("INT" if signed else "UINT") + b


def _quantizer_type(node: ir.Node, opset: dict[str, int]) -> OperandType | None:
    domain = canonical_domain(node.domain)
    op = node.op_type
    if domain == QONNX:
        version = max((v for d, v in opset.items() if canonical_domain(d) == QONNX), default=1)
        bits, signed, _ = quantizer_bits(node, version)
        if bits is None:
            return None
        if op == "BipolarQuant":
            return OperandType(1.0, "BIPOLAR")
        if op == "FloatQuant":
            e, m = constant_scalar(_input(node, 2)), constant_scalar(_input(node, 3))
            return OperandType(bits, f"FLOAT<{e:g},{m:g}>")
        if op == "MultiThreshold":
            signed = float(_attr(node, "out_bias", 0.0)) < 0
        return OperandType(bits, _int_label(bits, True if signed is None else signed))
    if domain == STANDARD and op == "DequantizeLinear":
        source = _input(node, 0)
        clip = source.producer() if source is not None else None
        if clip is not None and clip.op_type == "Clip" and canonical_domain(clip.domain) == STANDARD:
            lo, hi = constant_scalar(_input(clip, 1)), constant_scalar(_input(clip, 2))
            zp = constant_scalar(_input(node, 2)) or 0.0
            if lo is not None and hi is not None and hi > lo:
                bits = float(max(1, math.ceil(math.log2(hi - lo + 1))))
                return OperandType(bits, _int_label(bits, lo - zp < 0))
        if source is not None and source.dtype is not None:
            dtype = source.dtype
            signed = dtype.name.startswith("INT")
            if dtype.is_integer():
                return OperandType(float(dtype.bitwidth), _int_label(dtype.bitwidth, signed))
        zp = _input(node, 2)
        if zp is not None and zp.dtype is not None and zp.dtype.is_integer():
            return OperandType(float(zp.dtype.bitwidth), _int_label(zp.dtype.bitwidth, zp.dtype.name.startswith("INT")))
        return OperandType(8.0, "INT8")
    return None


def _dynamic_values(graph: ir.Graph) -> set[int]:
    """ids of node outputs that depend on a graph input (not constants)."""
    dynamic: set[int] = {id(v) for v in graph.inputs if v.const_value is None}
    for node in graph:  # nodes are kept in topological order
        if any(v is not None and id(v) in dynamic for v in node.inputs):
            dynamic.update(id(v) for v in node.outputs)
    return dynamic
