"""QCDQ -> QOp: rewrite quantized layers as QLinearConv / QLinearMatMul (``to_qop``).

A QOp model computes each quantized layer with one integer operator that reads
integer activations and writes integer activations: QuantizeLinear where float
data enters the quantized domain, QLinearConv / QLinearMatMul for the layers,
DequantizeLinear where float resumes. This module works on QCDQ form
(QuantizeLinear -> [Clip] -> DequantizeLinear for activations, integer constant
-> [Clip] -> DequantizeLinear for weights, int32 bias -> DequantizeLinear); a
model that still holds QONNX ops is first converted with ``to_qcdq``.

Layer pattern (every part must be present, as in any QOp exporter)::

    DQ(x_q; s_x, zp_x) --------------------.
    W_int -> [Clip] -> DQ(s_w, zp_w) -> [Transpose] -> Conv | MatMul | Gemm
    b_int32 -> DQ(s_b)  or float bias ----'
        -> [Add bias] -> [BatchNormalization*] -> [Relu] -> Q(s_y, zp_y) -> [Clip] -> ...

becomes ``x_q -> QLinearConv/QLinearMatMul -> [Clip] -> ...``:

- Conv -> QLinearConv (per-tensor or per-output-channel weight scales, group,
  pads, strides, dilations, auto_pad as they were).
- MatMul without bias -> QLinearMatMul (per-column weight scales are part of
  QLinearMatMul since opset 10 and run in onnxruntime, checked against our
  executor bit for bit); a MatMul of two quantized activations becomes a
  QLinearMatMul too.
- Gemm / MatMul + bias -> Reshape [-1, K, 1] + 1-D QLinearConv + Reshape, as
  Brevitas' QOp exporter does: QLinearMatMul has no bias input, and adding a
  bias after it requantized would add a second rounding. Gemm without bias
  -> QLinearMatMul with the transposed weight. ``alpha`` goes into the weight
  scale, ``beta`` into the bias, ``transA`` becomes an integer Transpose.
- Weights are folded at conversion time into 8-bit constants: a Clip on the
  weight integers (sub-8-bit weights) and Transposes between the weight's
  DequantizeLinear and the layer are applied to the constant; uint8 weights are
  shifted to int8 (w - 128, zp - 128: exact) because onnxruntime has no
  int8-activation x uint8-weight kernels; int4/int2 weights are widened.
- Bias: QLinearConv adds an int32 bias in units of s_x * s_w. A bias quantized
  at exactly that scale is used as it is; otherwise (another scale, a float bias,
  a folded BatchNormalization, Gemm alpha/beta) it is requantized to
  round(b / (s_x * s_w)) and the largest change is reported in ``notes`` (in
  output units and in output quantization steps). When it is not exact and the
  weight zero points are 0, the weight integers of each channel are first
  multiplied by the largest k that keeps them within 7 bits (|k w| <= 63, clear
  of onnxruntime's int16 u8s8 saturation; the int32 accumulator checked) while
  w_scale is divided by k -- the weights are unchanged, the bias grid
  is k times finer (this is what makes BatchNormalization folding accurate on
  binary/ternary weights). With ``requantize_bias=False`` such a layer is
  refused instead, unless the bias is exactly representable.
- Relu between the layer and its output quantizer is exact in the integer
  domain: Q(relu(y)) = max(Q(y), zp_y). It disappears when the integer range
  (container, or a following integer Clip) already starts at zp_y or above, and
  becomes an integer ``Clip(zp_y, max)`` otherwise.
- A Clip on the quantized output (sub-8-bit activations) is kept as it is:
  QLinearConv saturates only to its 8-bit container.
- onnxruntime's QLinearConv/QLinearMatMul write the input's container (no
  int8 -> uint8 or uint8 -> int8 kernels). For such a layer the output is
  computed in the input's container with the zero point moved by 128 (a
  bijection of the 8-bit range) and relabelled exactly by DequantizeLinear ->
  the original QuantizeLinear (same scale).
- Per-channel output scales (QLinear ops take a per-tensor y_scale):
  ConvInteger / MatMulInteger, then Cast * (s_x * s_w) + bias [-> Relu] in float
  into the original per-channel QuantizeLinear (the "integer op + float
  epilogue" form). A depthwise Conv whose input is quantized per channel takes
  the input scales into its per-channel weight scales (x_scale = 1): each
  output channel sums one input channel only. Any other per-channel input
  quantization is refused (the scales vary along the accumulation).
- int4/uint4/int2/uint2 activations (opset 21 QDQ) run in 8-bit containers:
  Cast to int8/uint8 before the layer, Clip to the narrow range and Cast back
  after it, all exact.
- ``fold_batchnorm=True`` also folds an inference BatchNormalization between the
  layer and its quantizer into per-channel weight scales (negative factors
  negate the weight integers) and the int32 bias. This changes the arithmetic
  (the bias is rounded to the accumulator scale; outputs may move by one step
  where the QDQ value lies within that rounding of a tie), so it is opt-in and
  reported. By default such a layer is refused as having no output quantizer,
  with a hint.

Before the layers, exact integer-domain moves (one topological sweep):

- MaxPool, Reshape, Flatten, Transpose, Squeeze, Unsqueeze and Identity right
  after a DequantizeLinear move before it (they commute with a positive
  per-tensor scale; MaxPool and Transpose also with per-channel scales);
- Relu right after a DequantizeLinear is dropped when the integer range already
  starts at the zero point, else becomes an integer Clip(zp, max);
- QuantizeLinear(DequantizeLinear(q)) with the same scale, zero point and
  container is q itself and is removed.

Layers that lack a quantizer (input, weight or output), whose parameters QOp
cannot express, or whose pattern is ambiguous are left in QDQ/float form and
listed in ``ConversionResult.unconverted`` with the reason (which quantizer is
missing and what the layer's data meets instead). ``allow_partial=False``
raises ConversionError listing them.

Opset: the model's ai.onnx opset is kept. QLinearConv/QLinearMatMul need 10;
integer Clip and integer MaxPool (Relu folding, narrow containers, moving
MaxPool) need 12 -- below that those features are skipped or the layer is
refused with a hint; pass ``opset=13`` to upgrade first (onnx's version
converter, through the opset-upgrade pass).

Everything is done with use-def links, in time linear in the graph size.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import ml_dtypes
import numpy as np

from qonnx_tools._ir import ir
from qonnx_tools.constants import constant_array
from qonnx_tools.convert.qcdq import standard_opset, to_qcdq
from qonnx_tools.convert.result import ConversionResult, Unconverted
from qonnx_tools.domains import STANDARD, canonical_domain, is_qonnx_domain
from qonnx_tools.errors import BadInputError, QonnxToolsError
from qonnx_tools.executor.kernels.quantize_linear import int_range
from qonnx_tools.graph_order import topological_order
from qonnx_tools.passes._rewrite import all_value_names, bypass, unique_name

__all__ = ["to_qop", "REQUIRES_ALL"]

#: The reason every missing-quantizer refusal carries.
REQUIRES_ALL = "QOp needs input, weight and output quantized"

#: Ops that move before a DequantizeLinear unchanged (integer-domain data movement).
_SHAPE_OPS = ("Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity")
#: Ops through which an integer tensor keeps its container and range (for dtype/range look-ups).
_PASS_THROUGH = ("Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Transpose", "MaxPool")
#: Ops evaluated at conversion time on the weight path (all inputs constant).
_FOLDABLE = ("Clip", "QuantizeLinear", "Cast", "Identity", "Transpose", "Reshape", "Squeeze", "Unsqueeze")

_INT8 = np.dtype(np.int8)
_UINT8 = np.dtype(np.uint8)
_NARROW = {
    np.dtype(ml_dtypes.int4): _INT8,
    np.dtype(ml_dtypes.int2): _INT8,
    np.dtype(ml_dtypes.uint4): _UINT8,
    np.dtype(ml_dtypes.uint2): _UINT8,
}
_INT32_MAX = 2**31 - 1
#: Weight integers are multiplied up to this magnitude only (see _upscale_factors).
_UPSCALE_LIMIT = 63
#: A requantized bias counts as exact when every value is within this fraction of an accumulator step.
_EXACT_BIAS_TOL = 1e-3


def to_qop(
    model: ir.Model,
    *,
    opset: int | None = None,
    allow_partial: bool = False,
    requantize_bias: bool = True,
    fold_batchnorm: bool = False,
) -> ConversionResult:
    """Convert a QCDQ (or QONNX) model to QOp form in place; see the module docstring.

    ``opset``: ai.onnx opset of the result (upgraded first when above the model's;
    never lowered). ``requantize_bias=False`` refuses layers whose bias would
    change when put at scale x_scale * w_scale. ``fold_batchnorm`` folds a
    BatchNormalization between a layer and its output quantizer.
    """
    notes: list[str] = []
    unconverted: list[Unconverted] = []
    if any(is_qonnx_domain(node.domain) for node in ir.traversal.RecursiveGraphIterator(model.graph)):
        first = to_qcdq(model, opset=opset, allow_partial=True)
        model = first.model
        notes.extend(f"qcdq: {n}" for n in first.notes)
        unconverted.extend(first.unconverted)
    _prepare_opset(model, opset, notes)
    converter = _Converter(model, requantize_bias=requantize_bias, fold_batchnorm=fold_batchnorm)
    converter.run()
    notes.extend(converter.notes)
    unconverted.extend(converter.unconverted)
    result = ConversionResult(model, target="qop", unconverted=unconverted, notes=notes)
    if not allow_partial:
        result.raise_if_partial()
    return result


def _prepare_opset(model: ir.Model, opset: int | None, notes: list[str]) -> None:
    current = standard_opset(model)
    if opset is not None:
        if opset < 10:
            raise BadInputError(f"to_qop: QLinearConv/QLinearMatMul need ai.onnx opset >= 10, not {opset}")
        if opset < current:
            raise BadInputError(f"to_qop: the model is at opset {current}; it is not lowered to opset {opset}")
        if opset > current:
            from qonnx_tools.passes.opset_upgrade import OpsetUpgrade

            OpsetUpgrade(target=opset)(model)
            notes.append(f"ai.onnx opset upgraded from {current} to {opset}")
            return
    if current < 10:
        if current == 0:
            model.opset_imports[STANDARD] = 10
            return
        raise BadInputError(
            f"to_qop: the model is at ai.onnx opset {current}; QOp needs >= 10 (pass opset=13 to upgrade first)"
        )


# -- small helpers -----------------------------------------------------------------


def _is(node: ir.Node | None, *ops: str) -> bool:
    return node is not None and canonical_domain(node.domain) == STANDARD and node.op_type in ops


def _attr(node: ir.Node, name: str, default: Any = None) -> Any:
    attr = node.attributes.get(name)
    return default if attr is None else attr.value


def _describe(node: ir.Node | None) -> str:
    return "a graph input" if node is None else f"{node.op_type} {node.name!r}"


def _per_tensor(arr: np.ndarray) -> bool:
    return arr.size == 1 or bool(np.all(arr == arr.reshape(-1)[0]))


def _scalar(arr: np.ndarray) -> np.ndarray:
    return np.asarray(arr).reshape(-1)[:1].reshape(())


def _fits(values: np.ndarray, dtype: np.dtype) -> bool:
    lo, hi = int_range(dtype)
    return values.size == 0 or (int(values.min()) >= lo and int(values.max()) <= hi)


@dataclass
class _Quant:
    """Constant parameters of one QuantizeLinear / DequantizeLinear node."""

    scale: np.ndarray  # float, scalar () or per-axis vector
    zero: np.ndarray  # int64, same shape as scale (zeros when absent)
    dtype: np.dtype  # integer container
    axis: int | None  # normalised axis for per-axis parameters, None when per-tensor

    @property
    def per_tensor(self) -> bool:
        return self.axis is None


@dataclass
class _WeightPlan:
    """Final 8-bit weight, its scale and zero point, and the int32 bias (QLinear path)."""

    w: np.ndarray
    scale: np.ndarray  # float64, () or [C]
    zero: np.ndarray  # int64, () or [C]
    dtype: np.dtype
    bias: np.ndarray | None = None  # int32 [C]
    factor: np.ndarray | None = None  # float64 [C]: BatchNormalization factor (applies to the bias too)
    shift: np.ndarray | None = None  # float64 [C]: BatchNormalization shift (epilogue path adds it in float)


@dataclass
class _Layer:
    """Everything the rewrite of one layer needs (found without changing the graph)."""

    node: ir.Node
    kind: str  # "conv" | "dense"
    x_q: ir.Value
    xq: _Quant
    q: ir.Node
    yq: _Quant
    w: np.ndarray | None = None  # int64; conv [M, C/g, k...], dense [K, N]
    w_scale: np.ndarray | None = None  # float64, () or [C]
    w_zero: np.ndarray | None = None  # int64, () or [C]
    b_q: ir.Value | None = None  # dynamic second MatMul operand (activation x activation)
    bq: _Quant | None = None
    bias_int: np.ndarray | None = None  # int64 [C] at scale bias_scale
    bias_scale: np.ndarray | None = None  # float32 [C] or ()
    bias_float: np.ndarray | None = None  # float64 [C] (float bias, already dequantized)
    bias_desc: str = ""
    alpha: float = 1.0
    beta: float = 1.0
    trans_a: bool = False
    bn: tuple[np.ndarray, np.ndarray] | None = None  # per-channel (factor, shift), float64
    bn_name: str = ""
    relu: bool = False
    epilogue: bool = False  # integer op + float epilogue, keeping the output QuantizeLinear
    depthwise_input_scales: bool = False  # per-channel input scales folded into the weight scales
    chain: list[ir.Node] = field(default_factory=list)  # nodes between the layer and q
    sources: list[ir.Value] = field(default_factory=list)  # inputs that may become dead


class _Refused(Exception):
    """A layer cannot be converted; the message is the reason."""


class _Converter:
    def __init__(self, model: ir.Model, *, requantize_bias: bool, fold_batchnorm: bool) -> None:
        self.model = model
        self.graph = model.graph
        self.opset = standard_opset(model)
        self.requantize_bias = requantize_bias
        self.fold_batchnorm = fold_batchnorm
        self.names = all_value_names(model) | {n.name for n in self.graph if n.name}
        self.notes: list[str] = []
        self.unconverted: list[Unconverted] = []
        self.dead: list[ir.Value | None] = []
        self._consts: dict[tuple, ir.Value] = {}
        self._widened: dict[int, ir.Value] = {}
        self.moved = 0
        self.converted: dict[str, int] = {}

    # -- driver ------------------------------------------------------------------
    def run(self) -> None:
        for node in topological_order(self.graph):
            if node.graph is self.graph:
                self._integer_domain_move(node)
        for node in topological_order(self.graph):
            if node.graph is not self.graph or not _is(node, "Conv", "MatMul", "Gemm"):
                continue
            try:
                layer = self._match(node)
                self._rewrite(layer)
            except _Refused as why:
                self.unconverted.append(Unconverted(node.name or "", node.op_type, str(why)))
        self._sweep()
        if self.moved:
            self.notes.append(f"{self.moved} node(s) moved into the integer domain or removed as exact no-ops")
        if self.converted:
            done = ", ".join(f"{n} {op}" for op, n in sorted(self.converted.items()))
            self.notes.append(f"converted: {done}")

    # -- constants -----------------------------------------------------------------
    def _fold(self, value: ir.Value | None, depth: int = 0) -> np.ndarray | None:
        """Value of ``value`` when it is a constant or computed from constants by simple ops."""
        if value is None:
            return None
        arr = constant_array(value)
        if arr is not None:
            return arr
        node = value.producer()
        if depth > 16 or not _is(node, *_FOLDABLE):
            return None
        args = []
        for v in node.inputs:
            if v is None:
                args.append(None)
                continue
            a = self._fold(v, depth + 1)
            if a is None:
                return None
            args.append(a)
        from qonnx_tools.executor.engine import bind_kernel

        try:
            kernel, ctx = bind_kernel(node, self.model)
            out = kernel(ctx, *args)
        except QonnxToolsError:
            return None
        if not isinstance(out, np.ndarray):
            out = out[list(node.outputs).index(value)]
        return np.asarray(out)

    def _param(self, existing: ir.Value | None, arr: np.ndarray, base: str) -> ir.Value:
        """``existing`` when it already holds exactly ``arr`` (same dtype and shape), else a new initializer."""
        if existing is not None:
            old = constant_array(existing)
            if old is not None and old.dtype == arr.dtype and old.shape == arr.shape and np.array_equal(old, arr):
                return existing
        return self._const(arr, base)

    def _const(self, arr: np.ndarray, base: str) -> ir.Value:
        arr = np.require(np.asarray(arr), requirements="C")
        key = (base, arr.dtype.str, arr.shape, arr.tobytes()) if arr.size <= 64 else None
        if key is not None and key in self._consts:
            return self._consts[key]
        name = unique_name(base, self.names)
        value = ir.Value(
            name=name,
            type=ir.TensorType(ir.DataType.from_numpy(arr.dtype)),
            shape=ir.Shape(arr.shape),
            const_value=ir.Tensor(arr, name=name),
        )
        self.graph.register_initializer(value)
        if key is not None:
            self._consts[key] = value
        return value

    def _new_node(self, anchor: ir.Node, op: str, inputs: list, attrs: dict | None, base: str,
                  dtype: np.dtype | None = None, *, replaces: ir.Node | None = None) -> ir.Value:
        """A node inserted before ``anchor``; it takes the name of the node it ``replaces`` (removed afterwards)."""
        name = replaces.name if replaces is not None and replaces.name else unique_name(base, self.names)
        node = ir.node(op, inputs, attributes=attrs or None, name=name)
        out = node.outputs[0]
        out.name = unique_name(f"{base}_output", self.names)
        if dtype is not None:
            out.type = ir.TensorType(ir.DataType.from_numpy(np.dtype(dtype)))
        self.graph.insert_before(anchor, node)
        return out

    # -- quantizer parameters ---------------------------------------------------------
    def _quant_params(self, node: ir.Node, data_dtype: np.dtype | None, rank: int | None) -> _Quant:
        """Scale / zero point / container of a QuantizeLinear or DequantizeLinear node."""
        where = f"{node.op_type} {node.name!r}"
        if _attr(node, "block_size", 0):
            raise _Refused(f"{where} uses blocked quantization, which QOp cannot express")
        scale = constant_array(node.inputs[1]) if len(node.inputs) > 1 else None
        zp_value = node.inputs[2] if len(node.inputs) > 2 else None
        zero = constant_array(zp_value) if zp_value is not None else None
        if scale is None or (zp_value is not None and zero is None):
            raise _Refused(f"{where} has scale/zero point computed at run time (QOp needs constants)")
        if np.dtype(scale.dtype).kind != "f" or not np.all(np.isfinite(scale)) or np.any(scale.astype(np.float64) <= 0):
            raise _Refused(f"{where} has a scale that is not a positive finite float")
        if zero is not None:
            dtype = np.dtype(zero.dtype)
        elif node.op_type == "QuantizeLinear" and _attr(node, "output_dtype", 0):
            dtype = np.dtype(ir.DataType(int(_attr(node, "output_dtype"))).numpy())
        elif data_dtype is not None:
            dtype = np.dtype(data_dtype)
        else:
            dtype = _UINT8
        if int_range(dtype) is None:
            raise _Refused(f"{where} uses container {dtype}; QOp needs integer containers")
        zero = np.zeros_like(scale, dtype=np.int64) if zero is None else zero.astype(np.int64)
        if scale.size == 1 and zero.size == 1:
            return _Quant(_scalar(scale), _scalar(zero), dtype, None)
        if scale.ndim > 1 or zero.ndim > 1:
            raise _Refused(f"{where} has parameters of rank > 1")
        axis = int(_attr(node, "axis", 1))
        if axis < 0:
            if rank is None:
                raise _Refused(f"{where} has a negative axis on a tensor of unknown rank")
            axis += rank
        size = max(scale.size, zero.size)
        return _Quant(np.broadcast_to(scale, (size,)).copy(), np.broadcast_to(zero, (size,)).copy(), dtype, axis)

    def _int_dtype(self, value: ir.Value) -> np.dtype | None:
        """Container of an integer activation (declared type, else from its producer)."""
        for _ in range(64):
            if value.dtype is not None:
                return np.dtype(value.dtype.numpy())
            node = value.producer()
            if node is None:
                return None
            if _is(node, "QuantizeLinear"):
                zp = node.inputs[2] if len(node.inputs) > 2 else None
                if zp is not None and zp.dtype is not None:
                    return np.dtype(zp.dtype.numpy())
                arr = constant_array(zp) if zp is not None else None
                if arr is not None:
                    return np.dtype(arr.dtype)
                if _attr(node, "output_dtype", 0):
                    return np.dtype(ir.DataType(int(_attr(node, "output_dtype"))).numpy())
                return _UINT8
            if _is(node, "QLinearConv", "QLinearMatMul"):
                arr = constant_array(node.inputs[7])
                return None if arr is None else np.dtype(arr.dtype)
            if _is(node, "Cast"):
                return np.dtype(ir.DataType(int(_attr(node, "to"))).numpy())
            if _is(node, "DynamicQuantizeLinear"):
                return _UINT8
            if _is(node, "Clip", *_PASS_THROUGH) and node.inputs and node.inputs[0] is not None:
                value = node.inputs[0]
                continue
            return None
        return None

    def _int_lower_bound(self, value: ir.Value, dtype: np.dtype) -> int:
        """A lower bound of an integer tensor: its container's, raised by integer Clips on its way."""
        lo = int_range(dtype)[0]
        for _ in range(64):
            node = value.producer()
            if _is(node, "Clip") and len(node.inputs) > 1 and node.inputs[1] is not None:
                bound = constant_array(node.inputs[1])
                if bound is not None and bound.size == 1:
                    lo = max(lo, int(bound.reshape(())))
            elif not _is(node, *_PASS_THROUGH):
                return lo
            if not node.inputs or node.inputs[0] is None:
                return lo
            value = node.inputs[0]
        return lo

    def _rank(self, value: ir.Value | None, depth: int = 0) -> int | None:
        """Rank of a tensor: declared, else derived from its producers (Brevitas exports carry few shapes)."""
        while value is not None and depth < 64:
            depth += 1
            if value.shape is not None:
                return value.shape.rank()
            arr = constant_array(value)
            if arr is not None:
                return arr.ndim
            node = value.producer()
            if _is(node, "Flatten", "Gemm"):
                return 2
            if _is(node, "Reshape") and len(node.inputs) > 1 and node.inputs[1] is not None:
                target = constant_array(node.inputs[1])
                if target is not None:
                    return int(target.size)
                dims = node.inputs[1].shape  # a shape computed at run time still has a static length
                return int(dims[0]) if dims is not None and dims.rank() == 1 and isinstance(dims[0], int) else None
            if _is(node, "Add", "Sub", "Mul", "Div"):
                ranks = [self._rank(v, depth + 8) for v in node.inputs]
                return None if None in ranks else max(ranks)
            if not _is(node, "QuantizeLinear", "DequantizeLinear", "Clip", "Relu", "Identity", "Cast",
                       "BatchNormalization", "QLinearConv", "Conv", "MaxPool", "ConvInteger"):
                return None
            value = node.inputs[0]
        return None

    # -- integer-domain moves (pre-pass) ----------------------------------------------
    def _dq_of_activation(self, value: ir.Value | None) -> ir.Node | None:
        node = value.producer() if value is not None else None
        if not _is(node, "DequantizeLinear") or node.inputs[0] is None or constant_array(node.inputs[0]) is not None:
            return None
        return node

    def _integer_domain_move(self, node: ir.Node) -> None:
        if canonical_domain(node.domain) != STANDARD or not node.inputs or node.inputs[0] is None:
            return
        op = node.op_type
        if op not in _SHAPE_OPS + ("Transpose", "MaxPool", "Relu", "QuantizeLinear"):
            return
        dq = self._dq_of_activation(node.inputs[0])
        if dq is None or any(v is node.inputs[0] for v in node.inputs[1:]):
            return
        q_in = dq.inputs[0]
        try:
            params = self._quant_params(dq, self._int_dtype(q_in), self._rank(dq.outputs[0]))
        except _Refused:
            return
        if op == "QuantizeLinear":
            self._drop_requantize(node, dq, q_in, params)
            return
        if len(node.outputs) != 1 and any(o.uses() or o.is_graph_output() for o in node.outputs[1:]):
            return
        if op == "Identity" and node.outputs[0].is_graph_output():
            return
        if op == "Relu":
            self._fold_relu_after_dq(node, dq, q_in, params)
            return
        axis = params.axis
        if op == "Transpose":
            perm = _attr(node, "perm")
            if axis is not None:
                if perm is None:
                    return
                axis = list(perm).index(axis)
        elif op == "MaxPool":  # monotone per channel; integer MaxPool needs opset 12 and an 8-bit container
            if self.opset < 12 or params.dtype in _NARROW or axis not in (None, 0, 1):
                return
        elif axis is not None:
            return
        moved = self._new_node(node, op, [q_in, *node.inputs[1:]], None, node.name or op, params.dtype, replaces=node)
        moved.producer().attributes.update({k: a for k, a in node.attributes.items()})
        self._replace_with_dq(node, moved, dq, axis)

    def _replace_with_dq(self, node: ir.Node, q_value: ir.Value, dq: ir.Node, axis: int | None) -> None:
        """Put DequantizeLinear(q_value) with ``dq``'s parameters in place of ``node``'s output."""
        attrs = {"axis": axis} if axis is not None else None
        base = f"{node.name or node.op_type}_dq"
        out = self._new_node(node, "DequantizeLinear", [q_value, *dq.inputs[1:]], attrs, base)
        old = node.outputs[0]
        out.type, out.shape = old.type, old.shape
        self._take_over(old, out)
        self.dead.extend(node.inputs)
        self.graph.remove(node, safe=True)
        self.moved += 1

    def _take_over(self, old: ir.Value, new: ir.Value) -> None:
        """Redirect every use of ``old`` to ``new``; ``new`` keeps ``old``'s name when it is a graph output."""
        was_output, name = old.is_graph_output(), old.name
        old.replace_all_uses_with(new, replace_graph_outputs=True)
        if was_output:
            old.name = None
            new.name = name

    def _fold_relu_after_dq(self, node: ir.Node, dq: ir.Node, q_in: ir.Value, params: _Quant) -> None:
        if not _per_tensor(params.zero):
            return
        zp = int(params.zero.reshape(-1)[0])
        if self._int_lower_bound(q_in, params.dtype) >= zp:
            if bypass(node, dq.outputs[0], node.outputs[0]):
                self.moved += 1
            return
        if self.opset < 12 or params.dtype in _NARROW:
            return
        clipped = self._int_clip(node, q_in, params.dtype, zp, None, node.name or "relu")
        self._replace_with_dq(node, clipped, dq, params.axis)

    def _drop_requantize(self, q: ir.Node, dq: ir.Node, q_in: ir.Value, params: _Quant) -> None:
        """Q(DQ(q)) with identical parameters and container is q: remove both from that path."""
        try:
            out = self._quant_params(q, None, None)
        except _Refused:
            return
        if out.dtype != params.dtype or out.axis != params.axis:
            return
        if out.scale.shape != params.scale.shape or out.zero.shape != params.zero.shape:
            return
        same_scale = np.array_equal(out.scale.astype(np.float32), params.scale.astype(np.float32))
        if same_scale and np.array_equal(out.zero, params.zero):
            if bypass(q, q_in, q.outputs[0]):
                self.dead.append(dq.outputs[0])
                self.moved += 1

    def _int_clip(self, anchor: ir.Node, value: ir.Value, dtype: np.dtype, lo: int | None, hi: int | None,
                  base: str) -> ir.Value:
        cmin, cmax = int_range(dtype)
        lo = cmin if lo is None else max(lo, cmin)
        hi = cmax if hi is None else min(hi, cmax)
        bounds = [self._const(np.array(lo, dtype), f"{base}_min"), self._const(np.array(hi, dtype), f"{base}_max")]
        return self._new_node(anchor, "Clip", [value, *bounds], None, f"{base}_clip", dtype)

    # -- layer matching ------------------------------------------------------------------
    def _match(self, node: ir.Node) -> _Layer:
        op = node.op_type
        kind = "conv" if op == "Conv" else "dense"
        x = node.inputs[0]
        # input quantizer
        dq = x.producer() if x is not None else None
        if not _is(dq, "DequantizeLinear"):
            raise _Refused(f"no input quantizer ({REQUIRES_ALL}): input {x.name!r} comes from {_describe(dq)}")
        x_q = dq.inputs[0]
        if constant_array(x_q) is not None:
            raise _Refused(f"no input quantizer ({REQUIRES_ALL}): input {x.name!r} is a constant")
        xq = self._quant_params(dq, self._int_dtype(x_q), self._rank(x))
        self._check_activation_container(xq.dtype, "input")
        trans_a = op == "Gemm" and bool(_attr(node, "transA", 0))
        layer = _Layer(node=node, kind=kind, x_q=x_q, xq=xq, q=node, yq=xq, trans_a=trans_a)
        layer.sources.append(x)
        # output quantizer (walk: [Add bias] [BatchNormalization] [Relu] QuantizeLinear)
        self._match_output(layer)
        # weight and bias
        if op == "Conv":
            self._match_conv_weight(layer)
            if len(node.inputs) > 2 and node.inputs[2] is not None:
                self._match_bias(layer, node.inputs[2])
        else:
            self._match_dense_weight(layer)
            if op == "Gemm":
                layer.alpha = float(_attr(node, "alpha", 1.0))
                layer.beta = float(_attr(node, "beta", 1.0))
                if len(node.inputs) > 2 and node.inputs[2] is not None:
                    if layer.beta != 0.0:
                        self._match_bias(layer, node.inputs[2])
                    else:
                        layer.sources.append(node.inputs[2])
            for extra in layer.chain:
                if extra.op_type == "Add":
                    if self._has_bias(layer):
                        raise _Refused("two biases (Gemm C and an Add) are not supported")
                    prev = node.outputs[0]
                    other = extra.inputs[1] if extra.inputs[0] is prev else extra.inputs[0]
                    self._match_bias(layer, other)
        if layer.b_q is not None and (self._has_bias(layer) or layer.epilogue):
            raise _Refused("a product of two activations with a bias, BatchNormalization or per-channel output "
                           "quantization is not supported")
        if not xq.per_tensor:
            self._fold_depthwise_input_scales(layer)
        return layer

    def _fold_depthwise_input_scales(self, layer: _Layer) -> None:
        """Per-channel input scales of a depthwise Conv factor out of each channel's sum: fold them into w_scale."""
        xq, node = layer.xq, layer.node
        groups = int(_attr(node, "group", 1))
        if not (
            layer.kind == "conv" and xq.axis == 1 and layer.w is not None and layer.w.shape[1] == 1
            and groups == layer.w.shape[0] == xq.scale.size and _per_tensor(xq.zero)
        ):
            raise _Refused(
                "per-channel input quantization: QLinearConv/QLinearMatMul need a per-tensor x_scale and, except "
                "in a depthwise Conv, the channel scales cannot be taken out of the accumulation"
            )
        layer.w_scale = np.broadcast_to(layer.w_scale, xq.scale.shape) * xq.scale.astype(np.float64)
        layer.xq = _Quant(np.array(1.0, np.float32), _scalar(xq.zero), xq.dtype, None)
        layer.depthwise_input_scales = True

    def _check_activation_container(self, dtype: np.dtype, what: str) -> None:
        if dtype in (_INT8, _UINT8) or dtype in _NARROW:
            return
        raise _Refused(
            f"{what} container {dtype} is not supported by QLinearConv/QLinearMatMul (int8/uint8, or int4/int2 widened)"
        )

    def _match_output(self, layer: _Layer) -> None:
        node = layer.node
        value = node.outputs[0]
        seen: list[str] = []
        while True:
            if value.is_graph_output():
                after = f" after {' -> '.join(seen)}" if seen else ""
                raise _Refused(f"no output quantizer ({REQUIRES_ALL}): output {value.name!r} is a graph output{after}")
            uses = value.uses()
            if len(uses) != 1:
                users = ", ".join(_describe(u) for u, _ in uses) or "nothing"
                raise _Refused(
                    f"no output quantizer ({REQUIRES_ALL}): output {value.name!r} feeds {users}"
                    + (" (several consumers)" if len(uses) > 1 else "")
                )
            user, index = uses[0]
            if _is(user, "QuantizeLinear") and index == 0:
                layer.q = user
                layer.yq = self._quant_params(user, None, self._rank(value))
                break
            if _is(user, "Relu") and "Relu" not in seen:
                seen.append("Relu")
                layer.relu = True
            elif _is(user, "BatchNormalization") and index == 0 and self.fold_batchnorm and seen in ([], ["Add"]):
                self._match_batchnorm(layer, user)
                seen.append("BatchNormalization")
            elif _is(user, "Add") and layer.kind == "dense" and not seen and self._constant_operand(user, value):
                seen.append("Add")
            else:
                hint = ""
                if _is(user, "BatchNormalization") and not self.fold_batchnorm:
                    hint = " (fold_batchnorm=True folds it into per-channel weight scales and the bias)"
                after = f" after {' -> '.join(seen)}" if seen else ""
                raise _Refused(
                    f"no output quantizer ({REQUIRES_ALL}): output {value.name!r} feeds {_describe(user)}{after}{hint}"
                )
            layer.chain.append(user)
            if len(user.outputs) != 1 and any(o.uses() or o.is_graph_output() for o in user.outputs[1:]):
                raise _Refused(f"{_describe(user)} has more than one used output")
            value = user.outputs[0]
        self._check_activation_container(layer.yq.dtype, "output")
        if not layer.yq.per_tensor:
            rank = self._rank(value) if layer.kind == "dense" else None
            channel = 1 if layer.kind == "conv" or node.op_type == "Gemm" or rank == 2 else None
            if rank is not None and layer.kind == "dense":
                channel = rank - 1
            if layer.yq.axis != channel:
                raise _Refused(
                    f"output quantized along axis {layer.yq.axis} in {_describe(layer.q)}; QLinearConv/QLinearMatMul "
                    "need a per-tensor y_scale and a float epilogue needs the channel axis"
                )
            if layer.yq.dtype in _NARROW:
                raise _Refused("per-channel output quantization into a sub-8-bit container is not supported")
            layer.epilogue = True

    def _constant_operand(self, add: ir.Node, value: ir.Value) -> bool:
        """Whether ``add`` adds a constant (float, or DequantizeLinear of integers) to ``value``."""
        if len(add.inputs) != 2 or add.inputs[0] is add.inputs[1]:
            return False
        other = add.inputs[1] if add.inputs[0] is value else add.inputs[0]
        dq = other.producer() if other is not None else None
        if _is(dq, "DequantizeLinear"):
            return self._fold(dq.inputs[0]) is not None
        return self._fold(other) is not None

    def _match_batchnorm(self, layer: _Layer, bn: ir.Node) -> None:
        where = _describe(bn)
        if layer.kind == "dense" and layer.node.op_type == "MatMul":
            if self._rank(layer.node.inputs[0]) != 2:
                raise _Refused(
                    f"{where} after a MatMul whose input is not known to be 2-D (channel axis 1 != features)"
                )
        if _attr(bn, "training_mode", 0):
            raise _Refused(f"{where} is in training mode")
        params = [constant_array(v) if v is not None else None for v in bn.inputs[1:5]]
        if len(params) != 4 or any(p is None for p in params):
            raise _Refused(f"{where} has parameters computed at run time")
        scale, shift, mean, var = (p.astype(np.float64).reshape(-1) for p in params)
        eps = float(_attr(bn, "epsilon", 1e-5))
        factor = scale / np.sqrt(var + eps)
        if np.any(factor == 0) or not np.all(np.isfinite(factor)):
            raise _Refused(f"{where} has a zero or non-finite factor; it cannot go into a weight scale")
        layer.bn = (factor, shift - mean * factor)
        layer.bn_name = bn.name or ""
        layer.sources.extend(v for v in bn.inputs[1:5] if v is not None)

    def _weight_dq(self, value: ir.Value) -> tuple[ir.Node, list[ir.Node]]:
        """The weight's DequantizeLinear and the Transposes/Identities between it and the layer."""
        after: list[ir.Node] = []
        node = value.producer()
        while _is(node, "Transpose", "Identity") and len(after) < 8:
            after.append(node)
            node = node.inputs[0].producer() if node.inputs[0] is not None else None
        if not _is(node, "DequantizeLinear"):
            raise _Refused(f"no weight quantizer ({REQUIRES_ALL}): weight {value.name!r} comes from {_describe(node)}")
        return node, after[::-1]

    def _load_weight(self, layer: _Layer, value: ir.Value) -> tuple[np.ndarray, _Quant] | None:
        """(integers, parameters with axis) of a constant quantized weight, after the Transposes; None if dynamic."""
        dq, after = self._weight_dq(value)
        w = self._fold(dq.inputs[0])
        if w is None:
            return None
        if int_range(w.dtype) is None:
            raise _Refused(f"weight of {_describe(dq)} is not an integer tensor")
        params = self._quant_params(dq, np.dtype(w.dtype), w.ndim)
        w = w.astype(np.int64)
        axis = params.axis
        for node in after:
            if node.op_type == "Transpose":
                perm = _attr(node, "perm") or list(range(w.ndim))[::-1]
                w = w.transpose(perm)
                if axis is not None:
                    axis = list(perm).index(axis)
        params.axis = axis
        layer.sources.append(value)
        return w, params

    def _match_conv_weight(self, layer: _Layer) -> None:
        loaded = self._load_weight(layer, layer.node.inputs[1])
        if loaded is None:
            raise _Refused(f"no weight quantizer ({REQUIRES_ALL}): the Conv weight is not a constant")
        w, params = loaded
        if params.axis not in (None, 0):
            raise _Refused(
                f"weight quantized along axis {params.axis}; QLinearConv takes per-output-channel (axis 0) only"
            )
        layer.w, layer.w_scale, layer.w_zero = w, params.scale.astype(np.float64), params.zero

    def _match_dense_weight(self, layer: _Layer) -> None:
        node = layer.node
        b = node.inputs[1]
        trans_b = node.op_type == "Gemm" and bool(_attr(node, "transB", 0))
        loaded = self._load_weight(layer, b)
        if loaded is None:
            if node.op_type != "MatMul":
                raise _Refused(f"no weight quantizer ({REQUIRES_ALL}): the Gemm weight is not a constant")
            dq, after = self._weight_dq(b)
            if after:
                raise _Refused("a Transpose between an activation's DequantizeLinear and MatMul is not supported")
            bq = self._quant_params(dq, self._int_dtype(dq.inputs[0]), b.shape.rank() if b.shape else None)
            if not bq.per_tensor or not layer.xq.per_tensor:
                raise _Refused("a product of two activations with per-channel quantization is not supported")
            self._check_activation_container(bq.dtype, "second input")
            if (layer.xq.dtype == _INT8 and bq.dtype == _UINT8) or bq.dtype in _NARROW:
                raise _Refused(f"QLinearMatMul of {layer.xq.dtype} x {bq.dtype} activations has no onnxruntime kernel")
            layer.b_q, layer.bq = dq.inputs[0], bq
            layer.sources.append(b)
            return
        w, params = loaded
        if trans_b:
            if w.ndim != 2:
                raise _Refused("Gemm weight is not 2-D")
            w = w.T
            if params.axis is not None:
                params.axis = 1 - params.axis
        if params.axis is not None and (w.ndim != 2 or params.axis != w.ndim - 1):
            raise _Refused(
                f"weight quantized along axis {params.axis} of a {w.ndim}-D weight; QLinearMatMul takes per-column "
                "(output feature) scales only"
            )
        layer.w, layer.w_scale, layer.w_zero = w, params.scale.astype(np.float64), params.zero

    def _match_bias(self, layer: _Layer, value: ir.Value) -> None:
        layer.sources.append(value)
        node = value.producer()
        if _is(node, "DequantizeLinear"):
            b = self._fold(node.inputs[0])
            if b is not None and int_range(b.dtype) is not None:
                params = self._quant_params(node, np.dtype(b.dtype), b.ndim)
                if params.axis is not None and b.ndim != 1:
                    raise _Refused("bias quantized per channel on a bias that is not 1-D")
                layer.bias_int = self._channel_vector(layer, b.astype(np.int64) - params.zero, "bias")
                layer.bias_scale = self._channel_vector(layer, params.scale.astype(np.float32), "bias scale")
                layer.bias_desc = f"bias of {_describe(node)} at scale {self._fmt_scale(params.scale)}"
                return
        b = self._fold(value)
        if b is None or np.dtype(b.dtype).kind != "f":
            raise _Refused(f"bias {value.name!r} is not a constant (comes from {_describe(node)})")
        layer.bias_float = self._channel_vector(layer, b.astype(np.float64), "bias")
        layer.bias_desc = "float bias"

    @staticmethod
    def _fmt_scale(scale: np.ndarray) -> str:
        flat = np.asarray(scale).reshape(-1)
        return f"{float(flat[0]):.6g}" if flat.size == 1 else f"[{flat.size} channels]"

    @staticmethod
    def _channels(layer: _Layer) -> int:
        return int(layer.w.shape[0] if layer.kind == "conv" else layer.w.shape[-1])

    def _channel_vector(self, layer: _Layer, b: np.ndarray, what: str) -> np.ndarray:
        c = self._channels(layer)
        if b.size == 1:
            return np.full(c, b.reshape(-1)[0], dtype=b.dtype)
        if b.reshape(-1).size != c:
            raise _Refused(f"{what} of shape {tuple(b.shape)} is not one value per output channel ({c})")
        if layer.kind == "dense" and b.ndim > 1 and b.shape[-1] != c:
            raise _Refused(f"{what} of shape {tuple(b.shape)} does not broadcast along the output features")
        if layer.kind == "conv" and b.ndim > 1:
            raise _Refused(f"{what} of shape {tuple(b.shape)} is not 1-D")
        return b.reshape(-1).copy()

    @staticmethod
    def _has_bias(layer: _Layer) -> bool:
        return layer.bias_int is not None or layer.bias_float is not None or layer.bn is not None

    # -- weights and bias ------------------------------------------------------------------
    def _plan_weights(self, layer: _Layer) -> _WeightPlan:
        """Fold alpha / BatchNormalization into the weight scales, requantize the bias, pick the 8-bit container."""
        w = layer.w.copy()
        c = self._channels(layer)
        ch_axis = 0 if layer.kind == "conv" else w.ndim - 1
        shape = [1] * w.ndim
        shape[ch_axis] = c
        scale = layer.w_scale.astype(np.float64)
        zero = layer.w_zero.astype(np.int64)
        bn_factor = np.ones(c)
        shift = np.zeros(c)
        if layer.alpha == 0.0:
            raise _Refused("Gemm alpha = 0")
        if layer.bn is not None:
            if layer.bn[0].shape != (c,):
                raise _Refused(f"BatchNormalization {layer.bn_name!r} has {layer.bn[0].size} channels, the layer {c}")
            bn_factor = layer.bn[0]
            shift = layer.bn[1]
        factor = bn_factor * layer.alpha  # on the product; the bias only meets beta and the BatchNormalization
        if layer.bn is not None or layer.alpha != 1.0:
            scale = np.broadcast_to(scale, (c,)) * np.abs(factor)
            zero = np.broadcast_to(zero, (c,)).copy()
            negative = factor < 0
            if np.any(negative):  # (w - zp) * s * f == ((2 zp - w) - zp) * s * |f|
                w = np.where(negative.reshape(shape), 2 * zero.reshape(shape if zero.size > 1 else ()) - w, w)
        bias = None
        if not layer.epilogue and self._has_bias(layer):
            if self._has_bias(layer) and layer.kind == "dense" and w.ndim != 2:
                raise _Refused("a bias on a MatMul with a weight that is not 2-D is not supported")
            bias, info = self._requantize_bias(layer, scale, bn_factor, shift)
            if not info["exact"] and np.all(zero == 0):
                k = self._upscale_factors(layer, w, ch_axis, c)
                if np.any(k > 1):
                    w = w * k.reshape(shape)
                    scale = np.broadcast_to(scale, (c,)) / k
                    zero = np.broadcast_to(zero, (c,)).copy()
                    bias, info = self._requantize_bias(layer, scale, bn_factor, shift)
                    info["upscaled"] = k
            self._report_bias(layer, info)
        if _fits(w, _INT8) and _fits(zero, _INT8):
            wdt = _INT8
        elif layer.xq.dtype != _INT8 and _fits(w, _UINT8) and _fits(zero, _UINT8):
            wdt = _UINT8
        elif _fits(w - 128, _INT8) and _fits(zero - 128, _INT8):
            w, zero, wdt = w - 128, zero - 128, _INT8
        else:
            raise _Refused("weight integers do not fit an 8-bit container (QLinearConv/QLinearMatMul need int8/uint8)")
        if scale.size > 1 or zero.size > 1:
            scale, zero = np.broadcast_to(scale, (c,)).copy(), np.broadcast_to(zero, (c,)).copy()
        return _WeightPlan(w.astype(wdt), scale, zero, wdt, bias, bn_factor, shift)

    def _upscale_factors(self, layer: _Layer, w: np.ndarray, ch_axis: int, c: int) -> np.ndarray:
        """Per-channel integers k with k * w still 8-bit and the int32 accumulator safe (w * k, scale / k: exact)."""
        other = tuple(a for a in range(w.ndim) if a != ch_axis)
        peak = np.abs(w).max(axis=other) if other else np.abs(w)
        fan_in = max(1, w.size // c)
        x_span = 255
        with np.errstate(divide="ignore"):
            # 7 bits (|k w| <= 63): onnxruntime's x86 u8s8 kernels without VNNI add pairs of products in
            # saturating int16 (255 * 64 * 2 < 2^15), the reason for its own "reduce_range" option
            k = np.where(peak > 0, _UPSCALE_LIMIT // np.maximum(peak, 1), 1)
            k = np.minimum(k, np.maximum(1, _INT32_MAX // np.maximum(1, peak * fan_in * x_span)))
        return np.maximum(k, 1).astype(np.int64)

    def _requantize_bias(self, layer: _Layer, scale: np.ndarray, factor: np.ndarray, shift: np.ndarray):
        """int32 bias at scale x_scale * w_scale (float32 product, as the kernels use it) and how far it moved."""
        c = factor.size
        s_x32 = np.float32(layer.xq.scale.reshape(()))
        acc32 = (s_x32 * np.broadcast_to(scale, (c,)).astype(np.float32)).astype(np.float32)
        untouched = layer.bn is None and layer.alpha == 1.0 and layer.beta == 1.0
        if layer.bias_int is not None and untouched and np.array_equal(layer.bias_scale, acc32):
            if np.abs(layer.bias_int).max(initial=0) > _INT32_MAX:
                raise _Refused("bias integers do not fit int32")
            return layer.bias_int.astype(np.int32), {"exact": True, "reused": True}
        if layer.bias_int is not None:
            real = layer.bias_int.astype(np.float64) * layer.bias_scale.astype(np.float64)
        elif layer.bias_float is not None:
            real = layer.bias_float.astype(np.float64)
        else:
            real = np.zeros(c)
        real = real * layer.beta * factor + shift
        acc = acc32.astype(np.float64)
        ratio = real / acc
        rounded = np.rint(ratio)
        if np.abs(rounded).max(initial=0) > _INT32_MAX:
            raise _Refused("bias does not fit int32 at scale x_scale * w_scale")
        change = float(np.abs(rounded * acc - real).max(initial=0))
        exact = float(np.abs(ratio - rounded).max(initial=0)) <= _EXACT_BIAS_TOL
        return rounded.astype(np.int32), {"exact": exact, "change": change}

    def _report_bias(self, layer: _Layer, info: dict) -> None:
        if info.get("reused"):
            return
        name = layer.node.name or layer.node.op_type
        why = [layer.bias_desc] if layer.bias_desc else []
        if layer.bn is not None:
            why.append(f"BatchNormalization {layer.bn_name!r} folded into per-channel weight scales")
        if layer.alpha != 1.0 or layer.beta != 1.0:
            why.append(f"alpha={layer.alpha:g}, beta={layer.beta:g}")
        if layer.depthwise_input_scales:
            why.append("per-channel input scales folded into the weight scales")
        reason = "; ".join(why)
        change = info["change"]
        steps = change / float(layer.yq.scale.reshape(()))
        k = info.get("upscaled")
        upscaled = ""
        if k is not None:
            upscaled = (
                f"; weight integers multiplied by {int(k.min())}..{int(k.max())} per channel (scale divided: "
                "exact) for a finer bias grid"
            )
        if not info["exact"] and not self.requantize_bias:
            raise _Refused(
                f"bias is not exactly representable at scale x_scale * w_scale ({reason}); requantizing changes it "
                f"by up to {change:.3g} ({steps:.3g} output steps); pass requantize_bias=True to accept"
            )
        if info["exact"]:
            self.notes.append(f"{name}: bias re-expressed exactly at scale x_scale * w_scale ({reason}{upscaled})")
        else:
            self.notes.append(
                f"{name}: bias requantized to int32 at scale x_scale * w_scale ({reason}{upscaled}); max change "
                f"{change:.3g} in output units = {steps:.3g} output quantization steps"
            )

    # -- rewrite ---------------------------------------------------------------------------
    def _rewrite(self, layer: _Layer) -> None:
        if layer.epilogue:
            self._rewrite_epilogue(layer)
            return
        node, q = layer.node, layer.q
        ydt = layer.yq.dtype
        x_dt = _NARROW.get(layer.xq.dtype, layer.xq.dtype)
        y_dt = _NARROW.get(ydt, ydt)
        y_zp = int(layer.yq.zero.reshape(()))
        # onnxruntime's QLinear kernels write the input's container: a uint8 <-> int8 output is computed there
        # with the zero point moved by 128 (a bijection) and relabelled by DequantizeLinear -> the original Q.
        relabel = x_dt != y_dt
        shift = (128 if x_dt == _UINT8 else -128) if relabel else 0
        out_dt = x_dt
        clip_lo = clip_hi = None
        if layer.relu and not self._relu_is_noop(q, ydt, y_zp):
            clip_lo = y_zp + shift
        if ydt in _NARROW:
            lo, hi = int_range(ydt)
            clip_lo = lo + shift if clip_lo is None else max(clip_lo, lo + shift)
            clip_hi = hi + shift
        if clip_lo is not None and self.opset < 12:
            raise _Refused("needs an integer Clip after the layer (Relu or a sub-8-bit container): ai.onnx opset >= 12 "
                           "(pass opset=13)")
        plan = self._plan_weights(layer) if layer.b_q is None else None
        base = node.name or node.op_type
        x_in = self._widen(node, layer.x_q, layer.xq.dtype)
        if layer.trans_a:
            x_in = self._new_node(node, "Transpose", [x_in], {"perm": [1, 0]}, f"{base}_transA", x_dt)
        dq_in = node.inputs[0].producer().inputs
        xs = self._param(dq_in[1], layer.xq.scale.astype(np.float32).reshape(()), f"{base}_x_scale")
        xz = self._param(dq_in[2] if len(dq_in) > 2 else None, layer.xq.zero.reshape(()).astype(x_dt),
                         f"{base}_x_zero_point")
        ys = self._param(q.inputs[1], layer.yq.scale.astype(np.float32).reshape(()), f"{base}_y_scale")
        yz = self._param(q.inputs[2] if len(q.inputs) > 2 and not relabel else None,
                         np.array(y_zp + shift, dtype=out_dt), f"{base}_y_zero_point")
        if plan is None:
            b_in = self._widen(node, layer.b_q, layer.bq.dtype)
            bs = self._const(layer.bq.scale.astype(np.float32).reshape(()), f"{base}_b_scale")
            bz = self._const(layer.bq.zero.reshape(()).astype(layer.bq.dtype), f"{base}_b_zero_point")
            y = self._new_node(node, "QLinearMatMul", [x_in, xs, xz, b_in, bs, bz, ys, yz], None, base, out_dt,
                               replaces=node)
            used = "QLinearMatMul"
        else:
            ws = self._const(plan.scale.astype(np.float32), f"{base}_w_scale")
            wz = self._const(plan.zero.astype(plan.dtype), f"{base}_w_zero_point")
            if layer.kind == "conv":
                inputs = [x_in, xs, xz, self._const(plan.w, f"{base}_w"), ws, wz, ys, yz]
                if plan.bias is not None:
                    inputs.append(self._const(plan.bias, f"{base}_bias"))
                y = self._new_node(node, "QLinearConv", inputs, None, base, out_dt, replaces=node)
                y.producer().attributes.update(dict(node.attributes))
                used = "QLinearConv"
            elif plan.bias is None:
                w = self._const(plan.w, f"{base}_w")
                y = self._new_node(node, "QLinearMatMul", [x_in, xs, xz, w, ws, wz, ys, yz], None, base, out_dt,
                                   replaces=node)
                used = "QLinearMatMul"
            else:
                y = self._dense_as_conv(layer, x_in, [xs, xz], plan, [ws, wz, ys, yz], out_dt)
                used = "QLinearConv"
        if clip_lo is not None:
            y = self._int_clip(node, y, out_dt, clip_lo, clip_hi, f"{base}_out")
        self.converted[used] = self.converted.get(used, 0) + 1
        if relabel:
            fdt = np.dtype(constant_array(q.inputs[1]).dtype)  # the original Q's input type
            y = self._new_node(node, "DequantizeLinear", [y, q.inputs[1], yz], None, f"{base}_relabel", fdt)
            q.replace_input_with(0, y)
            self.notes.append(
                f"{base}: {used} computes in the input's {x_dt} container (onnxruntime has no {x_dt} -> {y_dt} "
                f"kernel); DequantizeLinear -> {_describe(q)} relabels it to {y_dt} exactly"
            )
            self._remove_layer(layer, [])
            return
        if ydt in _NARROW:
            y = self._new_node(node, "Cast", [y], {"to": int(ir.DataType.from_numpy(ydt))}, f"{base}_narrow", ydt)
        old = q.outputs[0]
        y.shape = old.shape
        if old.type is not None:
            y.type = old.type
        name = old.name
        self._take_over(old, y)
        old.name = None
        y.name = name
        self._remove_layer(layer, [q])

    def _remove_layer(self, layer: _Layer, extra: list[ir.Node]) -> None:
        nodes = [layer.node, *layer.chain, *extra]
        for n in nodes:
            self.dead.extend(n.inputs)
        self.dead.extend(layer.sources)
        self.graph.remove(nodes, safe=True)

    def _rewrite_epilogue(self, layer: _Layer) -> None:
        """Per-channel output scales: ConvInteger/MatMulInteger, then Cast * (s_x s_w) + bias -> [Relu] -> the Q."""
        node, q = layer.node, layer.q
        plan = self._plan_weights(layer)
        base = node.name or node.op_type
        if plan.zero.size > 1 and layer.kind == "conv":
            if not _per_tensor(plan.zero):
                raise _Refused("per-channel weight zero points: onnxruntime's ConvInteger takes a per-tensor one only")
            plan.zero = _scalar(plan.zero)
        x_dt = _NARROW.get(layer.xq.dtype, layer.xq.dtype)
        x_in = self._widen(node, layer.x_q, layer.xq.dtype)
        if layer.trans_a:
            x_in = self._new_node(node, "Transpose", [x_in], {"perm": [1, 0]}, f"{base}_transA", x_dt)
        c = self._channels(layer)
        xz = self._const(layer.xq.zero.reshape(()).astype(x_dt), f"{base}_x_zero_point")
        wz = self._const(plan.zero.astype(plan.dtype), f"{base}_w_zero_point")
        w = self._const(plan.w, f"{base}_w")
        if layer.kind == "conv":
            acc = self._new_node(node, "ConvInteger", [x_in, w, xz, wz], None, base, np.int32, replaces=node)
            acc.producer().attributes.update(dict(node.attributes))
            used = "ConvInteger"
            channel_shape = (c,) + (1,) * (plan.w.ndim - 2)
        else:
            acc = self._new_node(node, "MatMulInteger", [x_in, w, xz, wz], None, base, np.int32, replaces=node)
            used = "MatMulInteger"
            channel_shape = (c,)
        fdt = np.dtype(layer.yq.scale.dtype) if np.dtype(layer.yq.scale.dtype).kind == "f" else np.dtype(np.float32)
        if node.outputs[0].dtype is not None:
            fdt = np.dtype(node.outputs[0].dtype.numpy())
        mult = float(layer.xq.scale.reshape(())) * np.broadcast_to(plan.scale, (c,))
        real = np.zeros(c)
        if layer.bias_int is not None:
            real = layer.bias_int.astype(np.float64) * layer.bias_scale.astype(np.float64)
        elif layer.bias_float is not None:
            real = layer.bias_float
        real = real * layer.beta * plan.factor + plan.shift
        y = self._new_node(node, "Cast", [acc], {"to": int(ir.DataType.from_numpy(fdt))}, f"{base}_acc_float", fdt)
        y = self._new_node(node, "Mul", [y, self._const(mult.astype(fdt).reshape(channel_shape), f"{base}_multiplier")],
                           None, f"{base}_rescale", fdt)
        if np.any(real != 0):
            y = self._new_node(node, "Add", [y, self._const(real.astype(fdt).reshape(channel_shape), f"{base}_bias")],
                               None, f"{base}_bias_add", fdt)
        if layer.relu:
            y = self._new_node(node, "Relu", [y], None, f"{base}_relu", fdt)
        q.replace_input_with(0, y)
        self._remove_layer(layer, [])
        self.converted[used] = self.converted.get(used, 0) + 1
        self.notes.append(
            f"{base}: {used} + float epilogue (per-channel output scales in {_describe(q)}, which QLinear ops "
            "cannot take)"
        )

    def _relu_is_noop(self, q: ir.Node, dtype: np.dtype, zp: int) -> bool:
        if int_range(dtype)[0] >= zp:
            return True
        out = q.outputs[0]
        if out.is_graph_output() or not out.uses():
            return False
        for user, index in out.uses():
            if not (_is(user, "Clip") and index == 0 and len(user.inputs) > 1 and user.inputs[1] is not None):
                return False
            lo = constant_array(user.inputs[1])
            if lo is None or lo.size != 1 or int(lo.reshape(())) < zp:
                return False
        return True

    def _widen(self, anchor: ir.Node, value: ir.Value, dtype: np.dtype) -> ir.Value:
        """An int8/uint8 view of an activation (Cast for int4/int2 containers; cached per value)."""
        if dtype not in _NARROW:
            return value
        key = id(value)
        if key not in self._widened:
            wide = _NARROW[dtype]
            producer = value.producer()
            cast = ir.node("Cast", [value], attributes={"to": int(ir.DataType.from_numpy(wide))},
                           name=unique_name(f"{value.name or 'x'}_widen", self.names))
            cast.outputs[0].name = unique_name(f"{value.name or 'x'}_{wide}", self.names)
            cast.outputs[0].type = ir.TensorType(ir.DataType.from_numpy(wide))
            cast.outputs[0].shape = value.shape
            if producer is None:
                self.graph.insert_before(anchor, cast)
            else:
                self.graph.insert_after(producer, cast)
            self._widened[key] = cast.outputs[0]
        return self._widened[key]

    def _dense_as_conv(self, layer: _Layer, x_in: ir.Value, x_params: list, plan: _WeightPlan, rest: list,
                       y_dt: np.dtype) -> ir.Value:
        """MatMul/Gemm with bias: Reshape [-1, K, 1] -> QLinearConv (kernel 1) -> Reshape back."""
        node = layer.node
        base = node.name or node.op_type
        k, n = plan.w.shape
        x_dt = _NARROW.get(layer.xq.dtype, layer.xq.dtype)
        flat = self._new_node(node, "Reshape", [x_in, self._const(np.array([-1, k, 1], np.int64), f"{base}_in_shape")],
                              None, f"{base}_reshape_in", x_dt)
        w_conv = self._const(np.ascontiguousarray(plan.w.T)[:, :, None], f"{base}_w")
        ws, wz, ys, yz = rest
        bias = self._const(plan.bias, f"{base}_bias")
        conv = self._new_node(node, "QLinearConv", [flat, *x_params, w_conv, ws, wz, ys, yz, bias],
                              {"kernel_shape": [1], "strides": [1], "pads": [0, 0], "dilations": [1], "group": 1},
                              base, y_dt, replaces=node)
        if node.op_type == "Gemm" or self._rank(node.inputs[0]) == 2:
            target = self._const(np.array([-1, n], np.int64), f"{base}_out_shape")
        else:
            dims = self._new_node(node, "Shape", [x_in], None, f"{base}_shape", np.int64)
            lead = self._new_node(node, "Slice", [dims, self._const(np.array([0], np.int64), f"{base}_zero"),
                                                  self._const(np.array([-1], np.int64), f"{base}_minus_one")],
                                  None, f"{base}_lead", np.int64)
            target = self._new_node(node, "Concat", [lead, self._const(np.array([n], np.int64), f"{base}_n")],
                                    {"axis": 0}, f"{base}_out_shape", np.int64)
        return self._new_node(node, "Reshape", [conv, target], None, f"{base}_reshape_out", y_dt)

    # -- cleanup ------------------------------------------------------------------------------
    def _sweep(self) -> None:
        """Remove nodes and initializers this conversion left without consumers (and only those)."""
        stack = list(self.dead)
        while stack:
            value = stack.pop()
            if value is None or value.uses() or value.is_graph_output():
                continue
            node = value.producer()
            if node is not None:
                if node.graph is not self.graph or any(o.uses() or o.is_graph_output() for o in node.outputs):
                    continue
                inputs = list(node.inputs)
                self.graph.remove(node, safe=True)
                stack.extend(inputs)
            elif value.is_initializer() and not value.is_graph_input():
                if self.graph.initializers.get(value.name) is value:
                    self.graph.initializers.pop(value.name)
