"""infer-datatypes: propagate quantized datatypes and write them as ``finn_datatype`` annotations.

One visit per node in topological order (linear time). Annotations are recomputed
from scratch on every run, so stale ones never survive, except the declared ones:

* graph inputs keep their annotation; an unannotated float graph input is FLOAT32
  (and is annotated so);
* constants (initializers, also those listed as graph inputs, and ``Constant``
  outputs) whose values are all integers have the narrowest integer datatype
  holding exactly those values, whatever they are annotated with (the values
  decide): the first of BINARY {0, 1}, BIPOLAR {-1, +1}, INT1 {-1, 0} and
  TERNARY {-1, 0, 1} that holds them, else the smallest INTn/UINTn holding ``[min, max]``.
  Other constants keep an annotation they already have, else are FLOAT32.
  A float-typed integer-valued constant is annotated with that datatype when it
  feeds the integer part: an input of MatMul, Gemm, Conv, Add, Sub, Mul or
  MultiThreshold whose non-constant inputs all have integer datatypes (weights,
  integer biases, thresholds). Other constants (quantizer scales, bit widths,
  float weights) are not annotated by this pass, and an annotation they have stays.

Rules for node outputs:

* QONNX ops (IntQuant, BipolarQuant, MultiThreshold, Trunc, FloatQuant...): the op
  registry's ``infer_datatypes`` (None there means FLOAT32). Channels-last Conv and
  MaxPool follow the standard Conv and MaxPool rules.
* Data movement keeps the datatype of the data input: Reshape, Flatten, Transpose,
  Squeeze, Unsqueeze, Identity, Dropout, Slice, Gather, GatherElements, Split, Tile,
  Expand, MaxPool, GlobalMaxPool, ReduceMax, ReduceMin, DepthToSpace, SpaceToDepth,
  Resize/Upsample in ``nearest`` mode, Pad in edge/reflect/wrap mode or in constant
  mode with a pad value the datatype contains (another integer pad value widens it).
* Concat: the common datatype when all inputs share one; else the smallest
  INTn/UINTn covering every input's integer range; else FLOAT32.
* Relu of an integer datatype: unchanged when it has no negative values, otherwise
  the smallest INTn/UINTn holding ``[0, max]`` (INT4 -> UINT3, BIPOLAR -> UINT1, written BINARY).
* Add / Sub / Mul of two integer-valued operands: the smallest INTn/UINTn holding
  the sum / difference / product range. A non-integer operand (e.g. a float scale)
  gives FLOAT32: SCALEDINT is not used for derived tensors.
* MatMul / Gemm / Conv with integer data and weights: the smallest INTn/UINTn holding
  the worst-case accumulator. When one operand is a constant with integer values the
  bound is exact per output column (MatMul/Gemm) or per output channel (Conv):
  ``sum_k max(w_k * lo, w_k * hi)`` (and the minimum likewise), over the other
  operand's range ``[lo, hi]``. Otherwise ``K * [min, max]`` of the four products of
  the range endpoints, with K the reduction length (MatMul/Gemm: the inner
  dimension; Conv: ``C_in / group * prod(kernel_shape)``, from W's shape). Conv's
  input range is widened to contain 0 (zero padding). A Gemm with ``alpha`` or
  ``beta`` other than 1 is FLOAT32; an integer bias (Gemm C, Conv B) adds its range.
  More than 64 bits gives FLOAT32.
* Everything else: FLOAT32.

Only float tensors are annotated, under the names qonnx 1.0 reads (``UINT1`` is
written ``BINARY``, qonnx's name for that set: see ``annotations.set_datatype``).
Tensors of integer or bool element type (shapes, indices, QuantizeLinear outputs)
get no annotation, and a stale one is removed; their datatype is still used
internally (the range of their element type). When a value's element type is
unknown (infer-shapes has not run), it counts as float unless it comes from
Shape/Size/NonZero/ArgMax/ArgMin/Cast-to-integer or from data movement of such a value.

Constants are read lazily, only when a rule needs their values, and a weight only
after the other operands turned out to be integers (so float models never read
their weights); unreadable external data counts as unknown (FLOAT32).

``modified`` is True only when some annotation changed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from qonnx_tools import ops as qonnx_ops
from qonnx_tools._ir import ir, subgraphs
from qonnx_tools.annotations import get_datatype, set_datatype
from qonnx_tools.datatypes import BINARY, BIPOLAR, FLOAT32, TERNARY, DataType, smallest_int_type
from qonnx_tools.domains import CHANNELS_LAST, QONNX, STANDARD, canonical_domain, opset_of
from qonnx_tools.errors import InvalidDataTypeError, QonnxToolsError
from qonnx_tools.executor.attributes import decode_attributes
from qonnx_tools.executor.registry import NodeContext
from qonnx_tools.graph_order import topological_order
from qonnx_tools.ops.base import TensorInfo
from qonnx_tools.passes.base import PassResult, QonnxPass

#: Constant inputs up to this many elements are handed to QONNX ops' infer_datatypes.
MAX_INFO_ELEMENTS = 1 << 16

#: Exact float64 integer arithmetic holds below this magnitude.
_EXACT = 1 << 53

#: Ops whose (first) data input's values pass through unchanged (a subset, reordered/copied).
_PASS_THROUGH = frozenset(
    {
        "Reshape", "Flatten", "Transpose", "Squeeze", "Unsqueeze", "Identity", "Dropout", "Slice",
        "Gather", "GatherElements", "Split", "Tile", "Expand", "MaxPool", "GlobalMaxPool",
        "ReduceMax", "ReduceMin", "DepthToSpace", "SpaceToDepth",
    }
)
#: Ops producing integer tensors whatever their input (used when element types are unknown).
_INT_PRODUCERS = frozenset({"Shape", "Size", "NonZero", "ArgMax", "ArgMin"})
#: Standard ops whose integer-valued constant inputs are annotated when their other inputs are integers.
_INTEGER_ARITHMETIC = frozenset({"MatMul", "Gemm", "Conv", "Add", "Sub", "Mul"})

Range = tuple[int, int]


@dataclass
class InferDatatypes(QonnxPass, name="infer-datatypes"):
    """propagate quantized datatypes (INTn, BIPOLAR, ...) into finn_datatype annotations"""

    def call(self, model: ir.Model) -> PassResult:
        run = _DatatypeRun(model)
        run.graph(model.graph)
        return PassResult(model, run.changed)


class _DatatypeRun:
    def __init__(self, model: ir.Model) -> None:
        self.model = model
        self.dts: dict[int, DataType | None] = {}  # id(value) -> datatype (None: not quantized / unknown)
        self.exact: dict[int, Range] = {}  # id(value) -> exact [min, max] of integer constants
        self.floaty: dict[int, bool] = {}  # id(value) -> element type is float
        self.keep: list[ir.Value] = []  # keeps the ids above unique
        self.changed = False

    # -- graphs ----------------------------------------------------------------
    def graph(self, graph: ir.Graph) -> None:
        for value in graph.inputs:
            if value.const_value is not None:
                continue  # an initializer listed as input: a constant
            is_float = _element_is_float(value)
            self.floaty[id(value)] = is_float is not False
            declared = get_datatype(value)
            if declared is None and is_float is not False:
                declared = FLOAT32
                self.changed |= set_datatype(value, FLOAT32)
            if declared is None:
                declared = _dtype_range_type(value)
            self.record(value, declared)
        for node in topological_order(graph):
            for sub in subgraphs(node):
                self.graph(sub)
            self.node(node)

    def record(self, value: ir.Value, datatype: DataType | None) -> None:
        self.dts[id(value)] = datatype
        self.keep.append(value)

    # -- values ----------------------------------------------------------------
    def datatype(self, value: ir.Value | None) -> DataType | None:
        if value is None:
            return None
        key = id(value)
        if key not in self.dts:
            self.constant_datatype(value)
        return self.dts.get(key)

    def constant_datatype(self, value: ir.Value) -> None:
        """Datatype (and exact range) of a constant; None for computed values never visited."""
        array = _constant(value)
        if array is None:
            self.record(value, None)
            return
        rng = _integer_range(array)
        if rng is not None:
            self.exact[id(value)] = rng
            try:
                self.record(value, _narrowest(array, rng))  # the values decide, not a declared annotation
            except InvalidDataTypeError:
                self.record(value, FLOAT32)
            return
        declared = get_datatype(value)
        if declared is not None:
            self.record(value, declared)
        else:
            self.record(value, FLOAT32 if array.dtype.kind == "f" else None)

    def range(self, value: ir.Value | None) -> Range | None:
        """Integer [min, max] of a value: exact for constants, its datatype's range otherwise."""
        datatype = self.datatype(value)
        if value is None or datatype is None or not datatype.is_integer:
            return None
        exact = self.exact.get(id(value))
        return exact if exact is not None else (int(datatype.min), int(datatype.max))

    def ranges(self, values: Sequence[ir.Value | None]) -> list[Range] | None:
        """Ranges of all ``values``, or None as soon as one is not integer.

        Computed values are looked at first, so a weight is only read when the
        other operands are integers.
        """
        order = sorted(range(len(values)), key=lambda i: _is_constant(values[i]))
        found: list[Range | None] = [None] * len(values)
        for i in order:
            found[i] = self.range(values[i])
            if found[i] is None:
                return None
        return found  # type: ignore[return-value]

    def is_float(self, value: ir.Value) -> bool:
        known = _element_is_float(value)
        if known is not None:
            return known
        return self.floaty.get(id(value), True)

    # -- nodes -----------------------------------------------------------------
    def node(self, node: ir.Node) -> None:
        domain = canonical_domain(node.domain)
        results: Sequence[DataType | None] = ()
        if node.op_type == "Constant" and domain == STANDARD:
            for value in node.outputs:
                self.constant_datatype(value)
                self.floaty[id(value)] = _element_is_float(value) is not False
            return  # constants keep (or lack) their annotation, like initializers
        if domain == STANDARD or (domain == CHANNELS_LAST and node.op_type in ("Conv", "MaxPool")):
            rule = _RULES.get(node.op_type)
            if rule is None and node.op_type in _PASS_THROUGH:
                rule = _pass_through
            if rule is not None:
                try:
                    results = rule(self, node)
                except (InvalidDataTypeError, ValueError, OverflowError):
                    results = ()
        elif domain in (QONNX, CHANNELS_LAST):
            results = self.qonnx_node(node, domain)
        self.track_floatness(node, domain)
        if (
            (domain == STANDARD and node.op_type in _INTEGER_ARITHMETIC)
            or (domain == QONNX and node.op_type == "MultiThreshold")
            or (domain == CHANNELS_LAST and node.op_type == "Conv")
        ):
            self.annotate_integer_constants(node)
        for i, value in enumerate(node.outputs):
            datatype = results[i] if i < len(results) else None
            self.record(value, datatype)
            if self.is_float(value):
                annotation = datatype if datatype is not None else FLOAT32
            else:
                annotation = None
            self.changed |= set_datatype(value, annotation)

    def annotate_integer_constants(self, node: ir.Node) -> None:
        """Annotate the integer-valued float constant inputs of ``node`` when its other inputs are integers."""
        inputs = [v for v in node.inputs if v is not None]
        dynamic = [v for v in inputs if not _is_constant(v)]
        if not dynamic:
            return  # a constant subexpression, not dataflow
        for value in dynamic:
            datatype = self.datatype(value)
            if datatype is None or not datatype.is_integer:
                return
        for value in inputs:
            if _is_constant(value) and _element_is_float(value) is not False:
                datatype = self.datatype(value)
                if id(value) in self.exact and datatype is not None and datatype.is_integer:
                    self.changed |= set_datatype(value, datatype)

    def qonnx_node(self, node: ir.Node, domain: str) -> Sequence[DataType | None]:
        op = qonnx_ops.get_op(domain, node.op_type, opset_of(self.model, domain) or None)
        if op is None:
            return ()
        where = f"node {node.name!r} ({node.op_type})"
        try:
            ctx = NodeContext(
                name=node.name or "",
                op_type=node.op_type,
                domain=domain,
                opset=opset_of(self.model, domain),
                attrs=op.resolve_attributes(decode_attributes(node), where),
                n_outputs=len(node.outputs),
            )
            infos = [self.info(v) for v in node.inputs]
            return op.infer_datatypes(ctx, infos)
        except (QonnxToolsError, ValueError, TypeError):
            return ()  # a malformed node: its outputs are plain FLOAT32 here; the executor reports it

    def info(self, value: ir.Value | None) -> TensorInfo:
        if value is None:
            return TensorInfo()
        dtype = value.type.dtype if isinstance(value.type, ir.TensorType) else None
        array = None
        tensor = value.const_value
        if tensor is None or _size(tensor.shape) <= MAX_INFO_ELEMENTS:
            array = _constant(value)
        return TensorInfo(dtype=dtype, shape=value.shape, value=array, datatype=self.datatype(value))

    def track_floatness(self, node: ir.Node, domain: str) -> None:
        """Floatness of outputs whose element type is unknown (no infer-shapes before)."""
        if domain != STANDARD:
            for value in node.outputs:
                self.floaty[id(value)] = True
            return
        if node.op_type in _INT_PRODUCERS:
            guess = False
        elif node.op_type == "Cast":
            to = node.attributes.get_int("to")
            guess = to is None or ir.DataType(to).is_floating_point()
        elif node.op_type in _PASS_THROUGH or node.op_type in ("Concat", "Pad", "Resize", "Upsample", "Relu"):
            first = node.inputs[0] if node.inputs else None
            guess = first is None or self.is_float(first)
        else:
            guess = True
        for value in node.outputs:
            self.floaty[id(value)] = guess


# -- rules ---------------------------------------------------------------------

Rule = Callable[[_DatatypeRun, ir.Node], Sequence[DataType | None]]


def _pass_through(run: _DatatypeRun, node: ir.Node) -> list[DataType | None]:
    datatype = run.datatype(node.inputs[0]) if node.inputs else None
    if node.op_type in ("MaxPool", "Dropout"):
        return [datatype]  # the second output (indices / mask) is not data
    return [datatype] * len(node.outputs)


def _resize(run: _DatatypeRun, node: ir.Node) -> list[DataType | None]:
    mode = node.attributes.get_string("mode", "nearest")
    return _pass_through(run, node) if mode == "nearest" else [None]


def _pad(run: _DatatypeRun, node: ir.Node) -> list[DataType | None]:
    datatype = run.datatype(node.inputs[0]) if node.inputs else None
    if datatype is None:
        return [None]
    if node.attributes.get_string("mode", "constant") != "constant":
        return [datatype]
    if opset_of(run.model, STANDARD, 11) < 11:
        pad_value = node.attributes.get_float("value", 0.0)
    else:
        pad_input = node.inputs[2] if len(node.inputs) > 2 else None
        if pad_input is None:
            pad_value = 0.0
        else:
            array = _constant(pad_input)
            if array is None or array.size != 1:
                return [None]
            pad_value = float(array.reshape(-1)[0])
    if datatype.allowed(pad_value):
        return [datatype]
    rng = run.range(node.inputs[0])
    if rng is None or not float(pad_value).is_integer():
        return [None]
    pad = int(pad_value)
    return [smallest_int_type(min(rng[0], pad), max(rng[1], pad))]


def _concat(run: _DatatypeRun, node: ir.Node) -> list[DataType | None]:
    inputs = [v for v in node.inputs if v is not None]
    datatypes = [run.datatype(v) for v in inputs]
    if not datatypes or any(dt is None for dt in datatypes):
        return [None]
    if all(dt == datatypes[0] for dt in datatypes):
        return [datatypes[0]]
    ranges = [run.range(v) for v in inputs]
    if any(r is None for r in ranges):
        return [None]
    return [smallest_int_type(min(r[0] for r in ranges), max(r[1] for r in ranges))]


def _relu(run: _DatatypeRun, node: ir.Node) -> list[DataType | None]:
    datatype = run.datatype(node.inputs[0])
    if datatype is None or not datatype.is_integer:
        return [None]
    if datatype.min >= 0:
        return [datatype]
    return [smallest_int_type(0, max(0, int(datatype.max)))]


def _elementwise(combine: Callable[[Range, Range], Range]) -> Rule:
    def rule(run: _DatatypeRun, node: ir.Node) -> list[DataType | None]:
        if len(node.inputs) != 2:
            return [None]
        found = run.ranges(node.inputs)
        if found is None:
            return [None]
        return [smallest_int_type(*combine(*found))]

    return rule


def _add(a: Range, b: Range) -> Range:
    return a[0] + b[0], a[1] + b[1]


def _sub(a: Range, b: Range) -> Range:
    return a[0] - b[1], a[1] - b[0]


def _mul(a: Range, b: Range) -> Range:
    products = [x * y for x in a for y in b]
    return min(products), max(products)


def _matmul(run: _DatatypeRun, node: ir.Node) -> list[DataType | None]:
    if len(node.inputs) != 2:
        return [None]
    a, b = node.inputs
    bounds = _dot_bounds(run, a, b, a_axis=-1, b_axis=-2)
    return [None if bounds is None else smallest_int_type(*bounds)]


def _gemm(run: _DatatypeRun, node: ir.Node) -> list[DataType | None]:
    if len(node.inputs) < 2 or node.attributes.get_float("alpha", 1.0) != 1.0:
        return [None]
    a, b = node.inputs[0], node.inputs[1]
    a_axis = 0 if node.attributes.get_int("transA", 0) else -1
    b_axis = -1 if node.attributes.get_int("transB", 0) else 0
    bounds = _dot_bounds(run, a, b, a_axis=a_axis, b_axis=b_axis)
    if bounds is None:
        return [None]
    c = node.inputs[2] if len(node.inputs) > 2 else None
    if c is not None:
        if node.attributes.get_float("beta", 1.0) != 1.0:
            return [None]
        c_range = run.range(c)
        if c_range is None:
            return [None]
        bounds = _add(bounds, c_range)
    return [smallest_int_type(*bounds)]


def _conv(run: _DatatypeRun, node: ir.Node) -> list[DataType | None]:
    if len(node.inputs) < 2:
        return [None]
    x, w = node.inputs[0], node.inputs[1]
    found = run.ranges([x, w])
    if found is None:
        return [None]
    x_range, w_range = found
    x_range = (min(x_range[0], 0), max(x_range[1], 0))  # zero padding
    weights = _integer_constant(w)
    if weights is not None and weights.ndim >= 2:
        per_channel = weights.reshape(weights.shape[0], -1)
        bounds = _exact_bounds(per_channel, x_range, axis=1)
    else:
        shape = w.shape
        if shape is None or len(shape) < 2 or not all(isinstance(d, int) for d in list(shape)[1:]):
            return [None]
        k = math.prod(list(shape)[1:])
        bounds = _scaled(_mul(x_range, w_range), k)
    if bounds is None:
        return [None]
    bias = node.inputs[2] if len(node.inputs) > 2 else None
    if bias is not None:
        b_range = run.range(bias)
        if b_range is None:
            return [None]
        bounds = _add(bounds, b_range)
    return [smallest_int_type(*bounds)]


def _dot_bounds(run: _DatatypeRun, a: ir.Value | None, b: ir.Value | None, *, a_axis: int, b_axis: int) -> Range | None:
    """Accumulator range of a·b (a's ``a_axis`` and b's ``b_axis`` are contracted)."""
    found = run.ranges([a, b])
    if found is None:
        return None
    a_range, b_range = found
    b_const = _integer_constant(b)
    if b_const is not None and b_const.ndim >= 1:
        axis = b_axis if b_const.ndim >= 2 else 0
        exact = _exact_bounds(b_const, a_range, axis=axis)
        if exact is not None:
            return exact
    a_const = _integer_constant(a)
    if a_const is not None and a_const.ndim >= 1:
        axis = a_axis if a_const.ndim >= 2 else 0
        exact = _exact_bounds(a_const, b_range, axis=axis)
        if exact is not None:
            return exact
    k = _inner_dim(a, a_axis) or _inner_dim(b, b_axis if b.shape is not None and len(b.shape) >= 2 else 0)
    if k is None:
        return None
    return _scaled(_mul(a_range, b_range), k)


def _exact_bounds(weights: np.ndarray, other: Range, *, axis: int) -> Range | None:
    """min over outputs of sum_k min(w*lo, w*hi), max over outputs of sum_k max(w*lo, w*hi)."""
    lo, hi = other
    k = weights.shape[axis]
    if k == 0:
        return 0, 0
    biggest = float(np.max(np.abs(weights))) * max(abs(lo), abs(hi)) * k
    if biggest >= _EXACT:
        return None  # float64 would not be exact; the caller uses the K * extremes bound
    w = weights.astype(np.float64)
    by_lo, by_hi = w * lo, w * hi
    top = np.maximum(by_lo, by_hi).sum(axis=axis)
    bottom = np.minimum(by_lo, by_hi).sum(axis=axis)
    return int(bottom.min()), int(top.max())


def _scaled(products: Range, k: int) -> Range:
    return products[0] * k, products[1] * k


def _inner_dim(value: ir.Value | None, axis: int) -> int | None:
    if value is None or value.shape is None or len(value.shape) == 0:
        return None
    try:
        dim = value.shape[axis]
    except IndexError:
        return None
    return dim if isinstance(dim, int) else None


_RULES: dict[str, Rule] = {
    "Resize": _resize,
    "Upsample": _resize,
    "Pad": _pad,
    "Concat": _concat,
    "Relu": _relu,
    "Add": _elementwise(_add),
    "Sub": _elementwise(_sub),
    "Mul": _elementwise(_mul),
    "MatMul": _matmul,
    "Gemm": _gemm,
    "Conv": _conv,
}


# -- helpers -------------------------------------------------------------------


def _constant(value: ir.Value | None) -> np.ndarray | None:
    """The constant array of an initializer or Constant output (lazily read), else None."""
    if value is None:
        return None
    if value.const_value is not None:
        try:
            return np.asarray(value.const_value.numpy())
        except OSError:  # external data missing: the executor reports that; here it is just unknown
            return None
    producer = value.producer()
    if producer is None or producer.op_type != "Constant" or canonical_domain(producer.domain) != STANDARD:
        return None
    attrs = decode_attributes(producer)
    for key in ("value", "value_float", "value_floats", "value_int", "value_ints"):
        if key in attrs:
            return np.asarray(attrs[key])
    return None


def _narrowest(array: np.ndarray, rng: Range) -> DataType:
    """The narrowest integer datatype holding every value of ``array`` (integer-valued, range ``rng``).

    Fewest bits first, then unsigned, then BIPOLAR before INT1: all-ones is BINARY, all minus-ones BIPOLAR.
    """
    lo, hi = rng
    if lo >= 0 and hi <= 1:
        return BINARY
    if lo >= -1 and hi <= 1:
        if not np.any(array == 0):
            return BIPOLAR
        return smallest_int_type(lo, hi) if hi <= 0 else TERNARY  # {-1, 0}: INT1
    return smallest_int_type(lo, hi)


def _is_constant(value: ir.Value | None) -> bool:
    if value is None:
        return False
    if value.const_value is not None:
        return True
    producer = value.producer()
    return producer is not None and producer.op_type == "Constant"


def _integer_constant(value: ir.Value | None) -> np.ndarray | None:
    """A constant whose values are all integers (any element type), else None."""
    array = _constant(value)
    if array is None or array.size == 0 or _integer_range(array) is None:
        return None
    return array


def _integer_range(array: np.ndarray) -> Range | None:
    """[min, max] when every element is an integer (float or int dtype), else None."""
    if array.size == 0:
        return None
    if array.dtype.kind in "iu":
        return int(array.min()), int(array.max())
    if array.dtype.kind == "b":
        return int(array.min()), int(array.max())
    if array.dtype.kind != "f":
        return None
    with np.errstate(invalid="ignore"):
        if not np.all(np.isfinite(array)) or not np.all(array == np.round(array)):
            return None
    return int(array.min()), int(array.max())


def _element_is_float(value: ir.Value) -> bool | None:
    type_ = value.type
    if isinstance(type_, ir.TensorType):
        return type_.dtype.is_floating_point()
    if value.const_value is not None:
        return value.const_value.dtype.is_floating_point()
    return None


def _dtype_range_type(value: ir.Value) -> DataType | None:
    """INTn/UINTn of an integer element type (the range it can hold), else None."""
    type_ = value.type
    if not isinstance(type_, ir.TensorType):
        return None
    dtype = type_.dtype
    if dtype in (ir.DataType.INT8, ir.DataType.INT16, ir.DataType.INT32, ir.DataType.INT64):
        return DataType.int(dtype.bitwidth, signed=True)
    if dtype in (ir.DataType.UINT8, ir.DataType.UINT16, ir.DataType.UINT32, ir.DataType.UINT64):
        return DataType.int(dtype.bitwidth, signed=False)
    if dtype == ir.DataType.BOOL:
        return DataType.int(1, signed=False)
    return None


def _size(shape) -> int:
    total = 1
    for d in shape:
        if not isinstance(d, int):
            return MAX_INFO_ELEMENTS + 1
        total *= d
    return total


