"""Model summary for ``qonnx info``: I/O, opsets, op counts, quantizers, parameter memory.

Quantizers are counted in every form a quantized ONNX model takes (``QuantizerSummary.form``):

* ``qonnx``: a QONNX op (Quant/IntQuant, BipolarQuant, Trunc, FloatQuant, MultiThreshold);
* ``q-dq`` / ``q-clip-dq``: ``QuantizeLinear -> DequantizeLinear``, with Clips between them as
  Brevitas exports bit widths below the container's (one row per DequantizeLinear);
* ``dq-constant``: a DequantizeLinear of a constant (integer weights and biases, optionally
  through a Clip); ``dq-input``: a DequantizeLinear of a graph input (quantized outside the model);
* ``q``: a QuantizeLinear that no DequantizeLinear reads (its integers feed QLinear ops or the
  graph outputs);
* ``dynamic``: DynamicQuantizeLinear (and the input of com.microsoft DynamicQuantizeMatMul);
* ``qlinear``: QLinear* ops (QLinearConv, QLinearMatMul, com.microsoft QLinearAdd, QGemm...): one
  row per constant integer operand (the weight, an int32 bias) and one for the requantized output
  (a QLinear op not in ``_QOPS``: that output row only, its inputs' layout being unknown);
* ``integer``: ConvInteger, MatMulInteger, com.microsoft MatMulIntegerToFloat, DynamicQuantizeMatMul:
  one row per constant integer operand.

A DequantizeLinear of a tensor computed in the model that is none of the above (the integer
output of a QLinear op or of a lone QuantizeLinear) is no row: that quantization is already one.
Q/DQ rows take their bits and signedness from the integer (or float8/float4) container, the
zero-point's element type or, without one, the DequantizeLinear input's (QuantizeLinear: its
``output_dtype``, else uint8); Clips narrow the range to a QONNX (bits, signed, narrow) format.

Roles: a quantizer whose data is a constant is a ``weight`` (``bias`` when the constant is 1-D, or
sits in a QLinear/Integer op's bias slot), otherwise an ``activation``.

Parameters (``num_parameters``): elements of constant tensors (initializers and Constant-node
outputs, as Brevitas' QOp export writes weights) that hold model values, which are

* floating-point constants, except those any quantizer form reads as its parameters (scale,
  zero-point, bit width, exponent/mantissa widths, thresholds of QONNX ops; scale and zero-point of
  Q/DQ, QLinear and Integer ops; the Clip bounds of a Q/DQ chain; the constant of the Mul that
  rescales an Integer op's Cast accumulator, as a QOp float epilogue does); and
* integer constants that a quantizer reads as its data: the input of a DequantizeLinear
  (through Clips), a constant integer operand or bias of a QLinear/Integer op. Other integer
  constants (shapes, axes, indices, zero-points, Clip bounds) are not parameters.

So zero-points and scales never count, as QONNX's scale/zeropt/bitwidth inputs never did.
``parameters_by_role`` splits the count: ``weight`` and ``bias`` for constants that a quantizer
reads as its data (under that quantizer's role), ``unquantized`` for the rest. Weight memory counts
every parameter at 32 bits (``weight_bits_float32``) and at its quantized width
(``weight_bits_quantized``): an integer constant at its element width (int8: 8, int4: 4), a
float constant behind a quantizer at that quantizer's bit width, any other at its own width.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any, NamedTuple

import numpy as np

from qonnx_tools._ir import ir
from qonnx_tools.annotations import get_datatype
from qonnx_tools.constants import constant_array, constant_scalar
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

#: Every value of ``QuantizerSummary.form``, in display order, with its label in the text summary.
FORMS: dict[str, str] = {
    "qonnx": "QONNX op",
    "q-dq": "Q->DQ",
    "q-clip-dq": "Q->Clip->DQ",
    "dq-constant": "DQ(constant)",
    "dq-input": "DQ(graph input)",
    "q": "Q (no DQ)",
    "dynamic": "DynamicQuantizeLinear",
    "qlinear": "QLinear op",
    "integer": "Integer op",
}

#: Forms of the standard Q/DQ (QCDQ) representation.
QDQ_FORMS = ("q-dq", "q-clip-dq", "dq-constant", "dq-input", "q")

_STANDARD = ("", "ai.onnx")
_MS = "com.microsoft"


class _Operand(NamedTuple):
    """A quantized data operand of a QLinear/Integer op: its input slot, scale and zero-point slots."""

    data: int
    scale: int | None
    zero_point: int | None


class _QOpLayout(NamedTuple):
    form: str  # "qlinear" or "integer"
    operands: tuple[_Operand, ...]
    output: tuple[int, int] | None = None  # (y_scale, y_zero_point) slots of a requantized output
    bias: int | None = None
    dynamic_input: int | None = None  # a float input the op quantizes itself (DynamicQuantizeMatMul)


_AB = (_Operand(0, 1, 2), _Operand(3, 4, 5))
_UNARY = _QOpLayout("qlinear", (_Operand(0, 1, 2),), (3, 4))

#: Input layouts of the quantized operators (ONNX and com.microsoft).
_QOPS: dict[str, _QOpLayout] = {
    "QLinearConv": _QOpLayout("qlinear", _AB, (6, 7), bias=8),
    "QLinearMatMul": _QOpLayout("qlinear", _AB, (6, 7)),
    "QLinearAdd": _QOpLayout("qlinear", _AB, (6, 7)),
    "QLinearMul": _QOpLayout("qlinear", _AB, (6, 7)),
    "QGemm": _QOpLayout("qlinear", _AB, (7, 8), bias=6),
    "QLinearAveragePool": _UNARY,
    "QLinearGlobalAveragePool": _UNARY,
    "QLinearLeakyRelu": _UNARY,
    "QLinearSigmoid": _UNARY,
    "QLinearSoftmax": _UNARY,
    "QLinearReduceMean": _UNARY,
    "ConvInteger": _QOpLayout("integer", (_Operand(0, None, 2), _Operand(1, None, 3))),
    "MatMulInteger": _QOpLayout("integer", (_Operand(0, None, 2), _Operand(1, None, 3))),
    "MatMulIntegerToFloat": _QOpLayout("integer", (_Operand(0, 2, 4), _Operand(1, 3, 5)), bias=6),
    "DynamicQuantizeMatMul": _QOpLayout("integer", (_Operand(1, 2, 3),), bias=4, dynamic_input=0),
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
    op: str  # the QONNX op, the chain ("Q->Clip->DQ"), or the standard op
    role: str  # "weight" (constant input), "activation" or "bias"
    bitwidth: float | None
    signed: bool | None
    narrow: bool | None
    rounding_mode: str | None
    granularity: str  # per-tensor, per-channel(axis=k), blocked, per-element or unknown
    scale_shape: list[int] | None = None
    quantized_elements: int | None = None
    form: str = "qonnx"  # one of FORMS
    container: str | None = None  # element type holding the quantized values (int8, uint4, float8e4m3fn...)
    tensor: str | None = None  # the quantized value (a weight initializer, an activation)


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
    quantizer_forms: dict[str, int] = field(default_factory=dict)  # form -> rows, forms present only
    quantizer_roles: dict[str, int] = field(default_factory=dict)  # role -> rows
    parameters_by_role: dict[str, int] = field(default_factory=dict)  # weight / bias / unquantized

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def summarize(model: ir.Model) -> ModelSummary:
    """Summarise ``model`` (main graph); counts come straight from the graph's nodes."""
    graph = model.graph
    initializer_names = set(graph.initializers)
    ops = op_counts(model)
    finder = _QuantizerFinder(model)
    for node in graph:
        finder.visit(node)
    quantizers = finder.rows
    params, by_role, float_bits, quant_bits = _parameter_memory(graph, finder)
    forms = Counter(q.form for q in quantizers)
    roles = Counter(q.role for q in quantizers)
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
        quantizer_forms={f: forms[f] for f in FORMS if forms[f]},
        quantizer_roles={r: roles[r] for r in ("weight", "bias", "activation") if roles[r]},
        parameters_by_role=by_role,
    )


def quantizer_forms(model: ir.Model) -> Counter:
    """Quantizers of the main graph per form (see FORMS)."""
    return Counter(summarize(model).quantizer_forms)


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


def _input(node: ir.Node, index: int | None) -> ir.Value | None:
    if index is None:
        return None
    return node.inputs[index] if index < len(node.inputs) else None


def _is(node: ir.Node | None, op_type: str, domains: tuple[str, ...] = _STANDARD) -> bool:
    return node is not None and node.op_type == op_type and node.domain in domains


def _role(const: np.ndarray | None) -> str:
    return "activation" if const is None else ("bias" if const.ndim == 1 else "weight")


# -- finding quantizers ------------------------------------------------------------------------

class _QuantizerFinder:
    """Visits each node once and follows use-def links to tell the quantizer forms apart.

    Collects the rows, the values quantizers read as parameters (scales, zero-points, bit
    widths, thresholds, Clip bounds) and the values they read as data (with the row).
    """

    def __init__(self, model: ir.Model) -> None:
        self.model = model
        self.opset = int(model.opset_imports.get("", model.opset_imports.get("ai.onnx", 1)))
        self.qonnx_opset = int(model.opset_imports.get(QONNX, 1))
        self.rows: list[QuantizerSummary] = []
        self.param_values: set[str] = set()
        self.data_values: dict[str, QuantizerSummary] = {}  # value name -> first row reading it as data
        self.constant_nodes: list[ir.Node] = []

    def _param(self, *values: ir.Value | None) -> None:
        for v in values:
            if v is not None and v.name:
                self.param_values.add(v.name)

    def _add(self, row: QuantizerSummary, data: ir.Value | None, const: np.ndarray | None) -> None:
        self.rows.append(row)
        if const is not None and data is not None and data.name:
            self.data_values.setdefault(data.name, row)

    def visit(self, node: ir.Node) -> None:
        if _is(node, "Constant") and node.outputs:
            self.constant_nodes.append(node)
        elif node.domain == QONNX and node.op_type in _QUANTIZERS:
            self._qonnx(node)
        elif _is(node, "DequantizeLinear"):
            self._dequantize(node)
        elif _is(node, "QuantizeLinear"):
            if not any(self._reaches_dq(use_node, index) for use_node, index in _uses(node.outputs[0])):
                self._lone_quantize(node)
        elif _is(node, "DynamicQuantizeLinear"):
            self._dynamic(node, node.inputs[0] if node.inputs else None, node.op_type)
        elif node.domain in (*_STANDARD, _MS) and node.op_type in _QOPS:
            self._qop(node, _QOPS[node.op_type])
        elif node.domain in (*_STANDARD, _MS) and node.op_type.startswith("QLinear"):
            self._qop(node, None)

    # QONNX ops
    def _qonnx(self, node: ir.Node) -> None:
        attrs = {k: a.value for k, a in node.attributes.items()}
        data = _input(node, 0)
        data_const = constant_array(data)
        bitwidth, signed, narrow = quantizer_bits(node, self.qonnx_opset)
        scale_index = _QUANTIZERS[node.op_type][1]
        scale = constant_array(_input(node, scale_index)) if scale_index is not None else None
        if node.op_type == "MultiThreshold":
            scale = constant_array(_input(node, 1))  # thresholds: one row per channel
            granularity = "per-tensor" if scale is None or scale.shape[0] == 1 else "per-channel(axis=1)"
        else:
            granularity = _granularity(scale, data)
        self._param(*node.inputs[1:])
        row = QuantizerSummary(
            node=node.name or "",
            op=node.op_type,
            role=_role(data_const),
            bitwidth=bitwidth,
            signed=signed,
            narrow=narrow,
            rounding_mode=str(attrs["rounding_mode"]).upper() if "rounding_mode" in attrs else None,
            granularity=granularity,
            scale_shape=None if scale is None else list(scale.shape),
            quantized_elements=None if data_const is None else int(data_const.size),
            form="qonnx",
            tensor=None if data is None else data.name,
        )
        self._add(row, data, data_const)

    # QuantizeLinear / DequantizeLinear
    def _reaches_dq(self, node: ir.Node, index: int) -> bool:
        """Whether a QuantizeLinear's use ``(node, index)`` leads to a DequantizeLinear (through Clips)."""
        if index != 0:
            return False
        if _is(node, "DequantizeLinear"):
            return True
        if _is(node, "Clip"):
            return any(self._reaches_dq(n, i) for n, i in _uses(node.outputs[0]))
        return False

    def _dequantize(self, dq: ir.Node) -> None:
        source = _input(dq, 0)
        clips: list[ir.Node] = []
        producer = None if source is None else source.producer()
        while _is(producer, "Clip") and producer.inputs and producer.inputs[0] is not None:
            clips.append(producer)
            source = producer.inputs[0]
            producer = source.producer()
        clips.reverse()  # in data order
        scale_v, zp_v = _input(dq, 1), _input(dq, 2)
        const = None
        if _is(producer, "QuantizeLinear"):
            q = producer
            data = _input(q, 0)
            const = constant_array(data)
            form = "q-clip-dq" if clips else "q-dq"
            op = "->".join(["Q", *("Clip" for _ in clips), "DQ"])
            container = _container(zp_v) or _container(_input(q, 2)) or _q_output_type(q)
            self._param(*q.inputs[1:])
            rounding = "ROUND"
        else:
            data = source
            const = constant_array(data)
            if const is not None:
                form = "dq-constant"
            elif data is not None and data.is_graph_input():
                form = "dq-input"
            else:
                # the integers come from a quantizer counted where it is (QLinear output, lone Q...)
                self._param(scale_v, zp_v)
                return
            op = "->".join([*("Clip" for _ in clips), "DQ"])
            container = _container(zp_v) or _container(source)
            rounding = None
        self._param(scale_v, zp_v)
        lo, hi = -np.inf, np.inf
        for clip in clips:
            c_lo, c_hi = self._clip_bounds(clip)
            lo, hi = max(lo, c_lo), min(hi, c_hi)
        bits, signed, narrow = _container_bits(container, lo, hi)
        scale = constant_array(scale_v)
        row = QuantizerSummary(
            node=dq.name or "",
            op=op,
            role=_role(const),
            bitwidth=bits,
            signed=signed,
            narrow=narrow,
            rounding_mode=rounding,
            granularity=_qdq_granularity(dq, scale, data),
            scale_shape=None if scale is None else list(scale.shape),
            quantized_elements=None if const is None else int(const.size),
            form=form,
            container=None if container is None else container.name.lower(),
            tensor=None if data is None else data.name,
        )
        self._add(row, data, const)

    def _clip_bounds(self, clip: ir.Node) -> tuple[float, float]:
        lo, hi = -np.inf, np.inf
        for key in ("min", "max"):
            attr = clip.attributes.get(key)
            if attr is not None:
                if key == "min":
                    lo = float(attr.value)
                else:
                    hi = float(attr.value)
        for i in (1, 2):
            value = _input(clip, i)
            if value is None:
                continue
            self._param(value)
            arr = constant_array(value)
            if arr is None or arr.size != 1:
                continue
            bound = float(np.asarray(arr, dtype=np.float64).reshape(()))
            if i == 1:
                lo = bound
            else:
                hi = bound
        return lo, hi

    def _lone_quantize(self, q: ir.Node) -> None:
        data = _input(q, 0)
        const = constant_array(data)
        container = _container(_input(q, 2)) or _q_output_type(q)
        bits, signed, narrow = _container_bits(container, -np.inf, np.inf)
        scale = constant_array(_input(q, 1))
        self._param(*q.inputs[1:])
        row = QuantizerSummary(
            node=q.name or "", op="Q", role=_role(const), bitwidth=bits, signed=signed, narrow=narrow,
            rounding_mode="ROUND", granularity=_qdq_granularity(q, scale, data),
            scale_shape=None if scale is None else list(scale.shape),
            quantized_elements=None if const is None else int(const.size), form="q",
            container=None if container is None else container.name.lower(),
            tensor=None if data is None else data.name,
        )
        self._add(row, data, const)

    def _dynamic(self, node: ir.Node, data: ir.Value | None, op: str) -> None:
        const = constant_array(data)
        row = QuantizerSummary(
            node=node.name or "", op=op, role=_role(const), bitwidth=8.0, signed=False, narrow=False,
            rounding_mode="ROUND", granularity="per-tensor", scale_shape=None,
            quantized_elements=None if const is None else int(const.size), form="dynamic", container="uint8",
            tensor=None if data is None else data.name,
        )
        self._add(row, data, const)

    # QLinear* and *Integer ops
    def _qop(self, node: ir.Node, layout: _QOpLayout | None) -> None:
        if layout is None:  # an unknown QLinear op: only its (requantized) output is known
            layout = _QOpLayout("qlinear", ())
            self._output_row(node, layout, None, None)
            return
        if layout.dynamic_input is not None:
            self._dynamic(node, _input(node, layout.dynamic_input), f"{node.op_type} input")
        for operand in layout.operands:
            data = _input(node, operand.data)
            scale_v, zp_v = _input(node, operand.scale), _input(node, operand.zero_point)
            self._param(scale_v, zp_v)
            const = constant_array(data)
            if const is None or not _is_integer(data):
                continue  # quantized upstream (a lone Q, DynamicQuantizeLinear): counted there
            container = _container(data)
            bits, signed, narrow = _container_bits(container, -np.inf, np.inf)
            scale = constant_array(scale_v)
            ref = scale if scale is not None else constant_array(zp_v)
            row = QuantizerSummary(
                node=node.name or "", op=node.op_type, role=_role(const), bitwidth=bits, signed=signed,
                narrow=narrow, rounding_mode=None, granularity=_operand_granularity(node, operand.data, ref, const),
                scale_shape=None if scale is None else list(scale.shape), quantized_elements=int(const.size),
                form=layout.form, container=None if container is None else container.name.lower(),
                tensor=data.name,
            )
            self._add(row, data, const)
        bias = _input(node, layout.bias)
        bias_const = constant_array(bias)
        if bias_const is not None and _is_integer(bias):
            container = _container(bias)
            bits, signed, narrow = _container_bits(container, -np.inf, np.inf)
            row = QuantizerSummary(
                node=node.name or "", op=node.op_type, role="bias", bitwidth=bits, signed=signed, narrow=narrow,
                rounding_mode=None, granularity="per-channel(axis=0)" if bias_const.size > 1 else "per-tensor",
                quantized_elements=int(bias_const.size), form=layout.form,
                container=None if container is None else container.name.lower(), tensor=bias.name,
            )
            self._add(row, bias, bias_const)
        if layout.output is not None:
            y_scale, y_zp = (_input(node, i) for i in layout.output)
            if y_scale is not None:
                self._output_row(node, layout, y_scale, y_zp)
        self._rescale_of(node)

    def _rescale_of(self, node: ir.Node) -> None:
        """ConvInteger/MatMulInteger -> Cast -> Mul(constant): that constant is the accumulator's scale
        (x_scale * w_scale, the float epilogue of a QOp conversion), a quantizer parameter, not a weight."""
        if not node.op_type.endswith("Integer") or not node.outputs:
            return
        for cast, _ in node.outputs[0].uses():
            if not _is(cast, "Cast"):
                continue
            for mul, index in cast.outputs[0].uses():
                if _is(mul, "Mul"):
                    self._param(_input(mul, 1 - index))

    def _output_row(self, node: ir.Node, layout: _QOpLayout, y_scale: ir.Value | None,
                    y_zp: ir.Value | None) -> None:
        self._param(y_scale, y_zp)
        out = node.outputs[0] if node.outputs else None
        container = _container(y_zp) or _container(out)
        bits, signed, narrow = _container_bits(container, -np.inf, np.inf)
        scale = constant_array(y_scale)
        self.rows.append(QuantizerSummary(
            node=node.name or "", op=node.op_type, role="activation", bitwidth=bits, signed=signed, narrow=narrow,
            rounding_mode="ROUND", granularity=_granularity(scale, None),
            scale_shape=None if scale is None else list(scale.shape), form=layout.form,
            container=None if container is None else container.name.lower(),
            tensor=None if out is None else out.name,
        ))


def _uses(value: ir.Value | None) -> list[tuple[ir.Node, int]]:
    return [] if value is None else [(use[0], use[1]) for use in value.uses()]


def _is_integer(value: ir.Value | None) -> bool:
    dtype = _container(value)
    return dtype is not None and dtype.is_integer()


def _container(value: ir.Value | None) -> ir.DataType | None:
    """Element type of ``value`` (from its type, or its constant), None when unknown."""
    if value is None:
        return None
    if value.dtype is not None:
        return value.dtype
    if value.const_value is not None:
        return value.const_value.dtype
    arr = constant_array(value)
    if arr is not None:
        try:
            return ir.DataType.from_numpy(arr.dtype)
        except TypeError:
            return None
    return None


def _q_output_type(q: ir.Node) -> ir.DataType:
    """QuantizeLinear's container without a zero-point: ``output_dtype`` (opset 21), else uint8."""
    attr = q.attributes.get("output_dtype")
    if attr is not None and int(attr.value):
        return ir.DataType(int(attr.value))
    out = q.outputs[0] if q.outputs else None
    return out.dtype if out is not None and out.dtype is not None else ir.DataType.UINT8


def _container_bits(
    container: ir.DataType | None, lo: float, hi: float
) -> tuple[float | None, bool | None, bool | None]:
    """(bits, signed, narrow) of quantized values in ``container``, Clip-narrowed to [lo, hi]."""
    if container is None:
        return None, None, None
    if container.is_floating_point():
        return float(container.bitwidth), True, None
    from qonnx_tools.executor.kernels.quantize_linear import int_range
    from qonnx_tools.ops.intquant import qonnx_int_format

    bounds = int_range(np.dtype(container.numpy()))
    if bounds is None:
        return float(container.bitwidth), None, None
    c_lo, c_hi = bounds
    signed = c_lo < 0
    if not (np.isfinite(lo) or np.isfinite(hi)):
        return float(container.bitwidth), signed, False
    r_lo = max(c_lo, int(np.ceil(lo)) if np.isfinite(lo) else c_lo)
    r_hi = min(c_hi, int(np.floor(hi)) if np.isfinite(hi) else c_hi)
    fmt = qonnx_int_format(r_lo, r_hi)
    if fmt is None:  # no QONNX range: the container's width, narrowness unknown
        return float(container.bitwidth), signed, None
    bits, f_signed, narrow = fmt
    return float(bits), f_signed, narrow


def _qdq_granularity(node: ir.Node, scale: np.ndarray | None, data: ir.Value | None) -> str:
    """Q/DQ granularity from the scale's shape and the node's ``axis`` / ``block_size``."""
    if scale is None:
        return "unknown"
    if scale.size == 1:
        return "per-tensor"
    axis_attr = node.attributes.get("axis")
    axis = 1 if axis_attr is None else int(axis_attr.value)
    rank = _rank(data)
    if axis < 0 and rank is not None:
        axis += rank
    block = node.attributes.get("block_size")
    if block is not None and int(block.value) > 0:
        return f"blocked(axis={axis})"
    return f"per-channel(axis={axis})"


def _operand_granularity(node: ir.Node, slot: int, ref: np.ndarray | None, data: np.ndarray) -> str:
    """Granularity of a QLinear/Integer op's constant operand from its scale (or zero-point) length."""
    if ref is None:
        return "unknown"
    if ref.size == 1:
        return "per-tensor"
    if node.op_type in ("QLinearConv", "ConvInteger"):
        axis = 0  # output channels
    elif node.op_type == "QGemm":
        trans = node.attributes.get("transB")
        axis = 0 if trans is not None and int(trans.value) else 1
    else:
        axis = data.ndim - 1  # MatMul B: one scale per column
    return f"per-channel(axis={axis})"


def _rank(value: ir.Value | None) -> int | None:
    if value is None:
        return None
    if value.shape is not None:
        return len(value.shape)
    arr = constant_array(value)
    return None if arr is None else arr.ndim


def quantizer_bits(node: ir.Node, qonnx_opset: int = 1) -> tuple[float | None, bool | None, bool | None]:
    """(bit width, signed, narrow) of a QONNX quantizer node, each None when not known.

    Bit widths come from constant inputs (IntQuant/Quant, Trunc, FloatQuant 1+e+m) or
    the threshold count (MultiThreshold); ``qonnx_opset`` selects the Trunc version.
    """
    op = node.op_type
    attrs = {k: a.value for k, a in node.attributes.items()}
    if op in ("IntQuant", "Quant"):
        return constant_scalar(_input(node, 3)), bool(attrs.get("signed", 1)), bool(attrs.get("narrow", 0))
    if op == "BipolarQuant":
        return 1.0, True, False
    if op == "FloatQuant":
        e, m = constant_scalar(_input(node, 2)), constant_scalar(_input(node, 3))
        return (None if e is None or m is None else 1 + e + m), True, None
    if op == "Trunc":
        if qonnx_opset >= 2:
            return constant_scalar(_input(node, 5)), bool(attrs.get("signed", 1)), bool(attrs.get("narrow", 0))
        return constant_scalar(_input(node, 4)), None, None
    if op == "MultiThreshold":
        thresholds = constant_array(_input(node, 1))
        if thresholds is None:
            return None, None, None
        levels = thresholds.shape[-1] + 1
        return float(np.ceil(np.log2(levels))) if levels > 1 else 1.0, None, None
    return None, None, None



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


# -- parameters --------------------------------------------------------------------------------

def _parameter_memory(graph: ir.Graph, finder: _QuantizerFinder) -> tuple[int, dict[str, int], int, int]:
    """(parameter count, count per role, bits at float32, bits at quantized widths); see the module docstring."""
    by_role = {"weight": 0, "bias": 0, "unquantized": 0}
    count = float_bits = quant_bits = 0
    for name, dtype, n in _constants(graph, finder.constant_nodes):
        row = finder.data_values.get(name)
        if dtype.is_floating_point():
            if name in finder.param_values:
                continue
            bits = row.bitwidth if row is not None and row.bitwidth is not None else dtype.bitwidth
        elif dtype.is_integer() and row is not None:
            bits = dtype.bitwidth  # stored integers: their element width
        else:
            continue
        count += n
        by_role["unquantized" if row is None else ("bias" if row.role == "bias" else "weight")] += n
        float_bits += 32 * n
        quant_bits += int(round(bits * n))
    return count, by_role, float_bits, quant_bits


def _constants(graph: ir.Graph, constant_nodes: list[ir.Node]):
    """(name, element type, element count) of every initializer and Constant-node output."""
    for name, value in graph.initializers.items():
        tensor = value.const_value
        dtype = value.dtype if value.dtype is not None else (None if tensor is None else tensor.dtype)
        if tensor is None or dtype is None:
            continue
        yield name, dtype, int(np.prod(tensor.shape.numpy())) if tensor.shape is not None else 0
    for node in constant_nodes:
        value = node.outputs[0]
        arr = constant_array(value)
        if arr is None or not value.name or value.name in graph.initializers:
            continue
        try:
            dtype = ir.DataType.from_numpy(arr.dtype)
        except TypeError:
            continue
        yield value.name, dtype, int(arr.size)
