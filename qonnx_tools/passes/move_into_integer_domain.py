"""move-into-integer-domain: ops right after a DequantizeLinear run on its integers instead.

In a QDQ model an activation is ``QuantizeLinear -> [Clip] -> DequantizeLinear`` and
whatever follows runs in float. Some ops commute exactly with dequantization
``(q - zp) * s`` (``s > 0``), so they can run on the integers ``q`` and the
DequantizeLinear can follow them; a QOp model needs this so that integer layers meet
integer data (``to_qop`` runs this pass first). One topological sweep; for a node
whose data input is the DequantizeLinear of an activation (not of a constant):

- **Reshape, Flatten, Squeeze, Unsqueeze, Identity** move before the
  DequantizeLinear when it is per-tensor (they only rearrange elements);
- **Transpose** moves too, also with per-axis parameters (the axis follows ``perm``);
- **MaxPool** moves with per-tensor or per-channel (axis 0 or 1) parameters: the
  maximum commutes with an increasing map that is constant over each window. Integer
  MaxPool needs ai.onnx opset >= 12 and an 8-bit container;
- **Relu** disappears when the integers cannot go below the zero point (the container
  or an integer Clip on the way says so), else becomes an integer
  ``Clip(zp, max)`` before the DequantizeLinear: ``relu((q - zp) s) = (max(q, zp) - zp) s``;
- **QuantizeLinear(DequantizeLinear(q))** with the same scale, zero point, axis and
  container is ``q`` itself: the QuantizeLinear goes.

The moved node keeps its name and attributes; a graph output keeps its name (the new
DequantizeLinear takes it). Values left without readers are removed afterwards (only
those). Everything is exact, with use-def links only.

Declines (``pass_.declined``): a candidate left alone, with the reason -- a
DequantizeLinear whose parameters are not constant or not expressible (blocked,
non-positive scale, float container), a reshape-like op after a per-axis
DequantizeLinear, a MaxPool below opset 12, on a 4-/2-bit container or quantized along
another axis, a Relu with per-channel zero points or needing a Clip it cannot have,
an op whose extra outputs are used, a QuantizeLinear that really requantizes.

The module also holds what reading integer tensors in a QDQ graph takes
(``quant_params``, ``int_dtype``, ``int_lower_bound``, ``rank_of``) and the small
graph ``Editor`` the pass shares with ``to_qop``, which continues on the same names
and constants and sweeps once at the end.
"""

from __future__ import annotations

from dataclasses import dataclass

import ml_dtypes
import numpy as np

from qonnx_tools._ir import ir
from qonnx_tools.constants import constant_array
from qonnx_tools.decline import Decline
from qonnx_tools.domains import STANDARD, canonical_domain, opset_of
from qonnx_tools.executor.kernels.quantize_linear import int_range
from qonnx_tools.graph_order import topological_order
from qonnx_tools.passes._rewrite import all_value_names, bypass, unique_name
from qonnx_tools.passes.base import PassResult, QonnxPass

#: Ops that move before a per-tensor DequantizeLinear unchanged (integer-domain data movement).
SHAPE_OPS = ("Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity")
#: Ops through which an integer tensor keeps its container and range (for dtype/range look-ups).
PASS_THROUGH = ("Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Transpose", "MaxPool")
#: Every op this pass looks at after a DequantizeLinear.
_CANDIDATES = SHAPE_OPS + ("Transpose", "MaxPool", "Relu", "QuantizeLinear")

INT8 = np.dtype(np.int8)
UINT8 = np.dtype(np.uint8)
#: 4-/2-bit containers and the 8-bit container they widen to.
NARROW = {
    np.dtype(ml_dtypes.int4): INT8,
    np.dtype(ml_dtypes.int2): INT8,
    np.dtype(ml_dtypes.uint4): UINT8,
    np.dtype(ml_dtypes.uint2): UINT8,
}


# -- reading integer tensors -------------------------------------------------------------


def is_op(node: ir.Node | None, *ops: str) -> bool:
    """Whether ``node`` is one of the ai.onnx ``ops``."""
    return node is not None and canonical_domain(node.domain) == STANDARD and node.op_type in ops


def describe(node: ir.Node | None) -> str:
    """``Op 'name'``, or "a graph input" for a value without producer."""
    return "a graph input" if node is None else f"{node.op_type} {node.name!r}"


def per_tensor(arr: np.ndarray) -> bool:
    return arr.size == 1 or bool(np.all(arr == arr.reshape(-1)[0]))


def scalar(arr: np.ndarray) -> np.ndarray:
    return np.asarray(arr).reshape(-1)[:1].reshape(())


@dataclass
class QuantParams:
    """Constant parameters of one QuantizeLinear / DequantizeLinear node."""

    scale: np.ndarray  # float, scalar () or per-axis vector
    zero: np.ndarray  # int64, same shape as scale (zeros when absent)
    dtype: np.dtype  # integer container
    axis: int | None  # normalised axis for per-axis parameters, None when per-tensor

    @property
    def per_tensor(self) -> bool:
        return self.axis is None


def quant_params(node: ir.Node, data_dtype: np.dtype | None, rank: int | None) -> QuantParams:
    """Scale / zero point / container of a QuantizeLinear or DequantizeLinear node; Decline if not expressible."""
    where = f"{node.op_type} {node.name!r}"
    attrs = node.attributes
    if attrs.get_int("block_size", 0):
        raise Decline(f"{where} uses blocked quantization, which QOp cannot express", node)
    scale = constant_array(node.inputs[1]) if len(node.inputs) > 1 else None
    zp_value = node.inputs[2] if len(node.inputs) > 2 else None
    zero = constant_array(zp_value) if zp_value is not None else None
    if scale is None or (zp_value is not None and zero is None):
        raise Decline(f"{where} has scale/zero point computed at run time (QOp needs constants)", node)
    if np.dtype(scale.dtype).kind != "f" or not np.all(np.isfinite(scale)) or np.any(scale.astype(np.float64) <= 0):
        raise Decline(f"{where} has a scale that is not a positive finite float", node)
    if zero is not None:
        dtype = np.dtype(zero.dtype)
    elif node.op_type == "QuantizeLinear" and attrs.get_int("output_dtype", 0):
        dtype = np.dtype(ir.DataType(attrs.get_int("output_dtype")).numpy())
    elif data_dtype is not None:
        dtype = np.dtype(data_dtype)
    else:
        dtype = UINT8
    if int_range(dtype) is None:
        raise Decline(f"{where} uses container {dtype}; QOp needs integer containers", node)
    zero = np.zeros_like(scale, dtype=np.int64) if zero is None else zero.astype(np.int64)
    if scale.size == 1 and zero.size == 1:
        return QuantParams(scalar(scale), scalar(zero), dtype, None)
    if scale.ndim > 1 or zero.ndim > 1:
        raise Decline(f"{where} has parameters of rank > 1", node)
    axis = attrs.get_int("axis", 1)
    if axis < 0:
        if rank is None:
            raise Decline(f"{where} has a negative axis on a tensor of unknown rank", node)
        axis += rank
    size = max(scale.size, zero.size)
    return QuantParams(np.broadcast_to(scale, (size,)).copy(), np.broadcast_to(zero, (size,)).copy(), dtype, axis)


def int_dtype(value: ir.Value) -> np.dtype | None:
    """Container of an integer activation (declared type, else from its producer)."""
    for _ in range(64):
        if value.dtype is not None:
            return np.dtype(value.dtype.numpy())
        node = value.producer()
        if node is None:
            return None
        if is_op(node, "QuantizeLinear"):
            zp = node.inputs[2] if len(node.inputs) > 2 else None
            if zp is not None and zp.dtype is not None:
                return np.dtype(zp.dtype.numpy())
            arr = constant_array(zp) if zp is not None else None
            if arr is not None:
                return np.dtype(arr.dtype)
            if node.attributes.get_int("output_dtype", 0):
                return np.dtype(ir.DataType(node.attributes.get_int("output_dtype")).numpy())
            return UINT8
        if is_op(node, "QLinearConv", "QLinearMatMul"):
            arr = constant_array(node.inputs[7])
            return None if arr is None else np.dtype(arr.dtype)
        if is_op(node, "Cast"):
            return np.dtype(ir.DataType(node.attributes.get_int("to")).numpy())
        if is_op(node, "DynamicQuantizeLinear"):
            return UINT8
        if is_op(node, "Clip", *PASS_THROUGH) and node.inputs and node.inputs[0] is not None:
            value = node.inputs[0]
            continue
        return None
    return None


def int_lower_bound(value: ir.Value, dtype: np.dtype) -> int:
    """A lower bound of an integer tensor: its container's, raised by integer Clips on its way."""
    lo = int_range(dtype)[0]
    for _ in range(64):
        node = value.producer()
        if is_op(node, "Clip") and len(node.inputs) > 1 and node.inputs[1] is not None:
            bound = constant_array(node.inputs[1])
            if bound is not None and bound.size == 1:
                lo = max(lo, int(bound.reshape(())))
        elif not is_op(node, *PASS_THROUGH):
            return lo
        if not node.inputs or node.inputs[0] is None:
            return lo
        value = node.inputs[0]
    return lo


def rank_of(value: ir.Value | None, depth: int = 0) -> int | None:
    """Rank of a tensor: declared, else derived from its producers (Brevitas exports carry few shapes)."""
    while value is not None and depth < 64:
        depth += 1
        if value.shape is not None:
            return value.shape.rank()
        arr = constant_array(value)
        if arr is not None:
            return arr.ndim
        node = value.producer()
        if is_op(node, "Flatten", "Gemm"):
            return 2
        if is_op(node, "Reshape") and len(node.inputs) > 1 and node.inputs[1] is not None:
            target = constant_array(node.inputs[1])
            if target is not None:
                return int(target.size)
            dims = node.inputs[1].shape  # a shape computed at run time still has a static length
            return int(dims[0]) if dims is not None and dims.rank() == 1 and isinstance(dims[0], int) else None
        if is_op(node, "Add", "Sub", "Mul", "Div"):
            ranks = [rank_of(v, depth + 8) for v in node.inputs]
            return None if None in ranks else max(ranks)
        if not is_op(node, "QuantizeLinear", "DequantizeLinear", "Clip", "Relu", "Identity", "Cast",
                     "BatchNormalization", "QLinearConv", "Conv", "MaxPool", "ConvInteger"):
            return None
        value = node.inputs[0]
    return None


# -- editing -------------------------------------------------------------------------------


class Editor:
    """New nodes and constants in a model's main graph, with fresh names; values that may have died.

    Names are taken from one set for the whole edit (names of removed values stay taken),
    small constants are shared by (base name, value), and ``sweep`` removes what the edit
    left without readers.
    """

    def __init__(self, model: ir.Model) -> None:
        self.model = model
        self.graph = model.graph
        self.names = all_value_names(model) | {n.name for n in self.graph if n.name}
        self.dead: list[ir.Value | None] = []
        self._consts: dict[tuple, ir.Value] = {}

    def const(self, arr: np.ndarray, base: str) -> ir.Value:
        """An initializer holding ``arr`` (small ones shared per base name and value)."""
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

    def param(self, existing: ir.Value | None, arr: np.ndarray, base: str) -> ir.Value:
        """``existing`` when it already holds exactly ``arr`` (same dtype and shape), else a new initializer."""
        if existing is not None:
            old = constant_array(existing)
            if old is not None and old.dtype == arr.dtype and old.shape == arr.shape and np.array_equal(old, arr):
                return existing
        return self.const(arr, base)

    def node(self, anchor: ir.Node, op: str, inputs: list, attrs: dict | None, base: str,
             dtype: np.dtype | None = None, *, replaces: ir.Node | None = None) -> ir.Value:
        """Output of a new node inserted before ``anchor``; it takes the name of the node it ``replaces``."""
        name = replaces.name if replaces is not None and replaces.name else unique_name(base, self.names)
        node = ir.node(op, inputs, attributes=attrs or None, name=name)
        out = node.outputs[0]
        out.name = unique_name(f"{base}_output", self.names)
        if dtype is not None:
            out.type = ir.TensorType(ir.DataType.from_numpy(np.dtype(dtype)))
        self.graph.insert_before(anchor, node)
        return out

    @staticmethod
    def take_over(old: ir.Value, new: ir.Value) -> None:
        """Redirect every use of ``old`` to ``new``; ``new`` keeps ``old``'s name when it is a graph output."""
        was_output, name = old.is_graph_output(), old.name
        old.replace_all_uses_with(new, replace_graph_outputs=True)
        if was_output:
            old.name = None
            new.name = name

    def int_clip(self, anchor: ir.Node, value: ir.Value, dtype: np.dtype, lo: int | None, hi: int | None,
                 base: str) -> ir.Value:
        """An integer Clip of ``value`` to [lo, hi] within the container ``dtype`` (None: the container's bound)."""
        cmin, cmax = int_range(dtype)
        lo = cmin if lo is None else max(lo, cmin)
        hi = cmax if hi is None else min(hi, cmax)
        bounds = [self.const(np.array(lo, dtype), f"{base}_min"), self.const(np.array(hi, dtype), f"{base}_max")]
        return self.node(anchor, "Clip", [value, *bounds], None, f"{base}_clip", dtype)

    def sweep(self) -> None:
        """Remove nodes and initializers this edit left without consumers (and only those)."""
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


# -- the pass ------------------------------------------------------------------------------


def dq_of_activation(value: ir.Value | None) -> ir.Node | None:
    """The DequantizeLinear producing ``value`` from a non-constant integer tensor, else None."""
    node = value.producer() if value is not None else None
    if not is_op(node, "DequantizeLinear") or node.inputs[0] is None or constant_array(node.inputs[0]) is not None:
        return None
    return node


@dataclass
class MoveIntoIntegerDomain(QonnxPass, name="move-into-integer-domain"):
    """MaxPool/Reshape/Flatten/Transpose/Squeeze/Unsqueeze/Identity after a DequantizeLinear move before it,
    Relu becomes an integer Clip or goes, Q(DQ(q)) with the same parameters is q"""

    def call(self, model: ir.Model) -> PassResult:
        edit = Editor(model)
        moved = self.move(edit)
        edit.sweep()
        return PassResult(model, moved > 0)

    def move(self, edit: Editor) -> int:
        """The moves on ``edit``'s model, one topological sweep; returns how many nodes moved or went.

        Values that may have died are left on ``edit.dead`` for ``edit.sweep()`` (``to_qop`` sweeps
        once, after its layers).
        """
        graph = edit.graph
        opset = opset_of(edit.model, STANDARD)
        moved = 0
        for node in topological_order(graph):
            if node.graph is not graph or not is_op(node, *_CANDIDATES) or not node.inputs:
                continue
            dq = dq_of_activation(node.inputs[0])
            if dq is None:
                continue  # not after the DequantizeLinear of an activation: not a candidate
            outcome = _move(edit, node, dq, opset)
            if isinstance(outcome, Decline):
                self.decline(outcome, node)
            else:
                moved += 1
        return moved


def _move(edit: Editor, node: ir.Node, dq: ir.Node, opset: int) -> None | Decline:
    """Move ``node`` (reading ``dq``'s output) into the integer domain, or say why not."""
    if any(v is node.inputs[0] for v in node.inputs[1:]):
        return Decline("the dequantized value is also another of its inputs", dq)
    q_in = dq.inputs[0]
    try:
        params = quant_params(dq, int_dtype(q_in), rank_of(dq.outputs[0]))
    except Decline as why:
        return why
    op = node.op_type
    if op == "QuantizeLinear":
        return _drop_requantize(edit, node, dq, q_in, params)
    if len(node.outputs) != 1 and any(o.uses() or o.is_graph_output() for o in node.outputs[1:]):
        return Decline("more than one of its outputs is used")
    if op == "Identity" and node.outputs[0].is_graph_output():
        return Decline("an Identity naming a graph output stays")
    if op == "Relu":
        return _fold_relu(edit, node, dq, q_in, params, opset)
    axis = params.axis
    if op == "Transpose":
        perm = node.attributes.get_ints("perm")
        if axis is not None:
            if perm is None:
                return Decline(f"{describe(dq)} is per-axis and the Transpose has no perm attribute", dq)
            axis = list(perm).index(axis)
    elif op == "MaxPool":  # monotone per channel; integer MaxPool needs opset 12 and an 8-bit container
        if opset < 12:
            return Decline(f"integer MaxPool needs ai.onnx opset >= 12 (the model has {opset})")
        if params.dtype in NARROW:
            return Decline(f"integer MaxPool needs an 8-bit container, not {params.dtype}", dq)
        if axis not in (None, 0, 1):
            return Decline(f"{describe(dq)} is quantized along axis {axis}; MaxPool commutes with per-tensor or "
                           "per-channel (axis 0 or 1) parameters only", dq)
    elif axis is not None:
        return Decline(f"{describe(dq)} is quantized along axis {axis}; per-axis parameters do not follow the "
                       f"elements through {op}", dq)
    moved = edit.node(node, op, [q_in, *node.inputs[1:]], None, node.name or op, params.dtype, replaces=node)
    moved.producer().attributes.update({k: a for k, a in node.attributes.items()})
    _replace_with_dq(edit, node, moved, dq, axis)
    return None


def _replace_with_dq(edit: Editor, node: ir.Node, q_value: ir.Value, dq: ir.Node, axis: int | None) -> None:
    """Put DequantizeLinear(q_value) with ``dq``'s parameters in place of ``node``'s output."""
    attrs = {"axis": axis} if axis is not None else None
    base = f"{node.name or node.op_type}_dq"
    out = edit.node(node, "DequantizeLinear", [q_value, *dq.inputs[1:]], attrs, base)
    old = node.outputs[0]
    out.type, out.shape = old.type, old.shape
    edit.take_over(old, out)
    edit.dead.extend(node.inputs)
    edit.graph.remove(node, safe=True)


def _fold_relu(edit: Editor, node: ir.Node, dq: ir.Node, q_in: ir.Value, params: QuantParams,
               opset: int) -> None | Decline:
    """Relu(DQ(q)): nothing when q >= zp already, else DQ(Clip(q, zp, max))."""
    if not per_tensor(params.zero):
        return Decline(f"{describe(dq)} has per-channel zero points (no single integer Clip)", dq)
    zp = int(params.zero.reshape(-1)[0])
    if int_lower_bound(q_in, params.dtype) >= zp:
        if bypass(node, dq.outputs[0], node.outputs[0]):
            return None
        return Decline("a no-op that cannot be removed without renaming a graph output")
    if opset < 12:
        return Decline(f"an integer Clip needs ai.onnx opset >= 12 (the model has {opset})")
    if params.dtype in NARROW:
        return Decline(f"an integer Clip on a {params.dtype} container is not supported", dq)
    clipped = edit.int_clip(node, q_in, params.dtype, zp, None, node.name or "relu")
    _replace_with_dq(edit, node, clipped, dq, params.axis)
    return None


def _drop_requantize(edit: Editor, q: ir.Node, dq: ir.Node, q_in: ir.Value, params: QuantParams) -> None | Decline:
    """Q(DQ(q)) with identical parameters and container is q: remove both from that path."""
    try:
        out = quant_params(q, None, None)
    except Decline as why:
        return why
    if out.dtype != params.dtype or out.axis != params.axis:
        return Decline(f"requantizes: container or axis differs from {describe(dq)}", dq)
    if out.scale.shape != params.scale.shape or out.zero.shape != params.zero.shape:
        return Decline(f"requantizes: parameter shapes differ from {describe(dq)}", dq)
    same_scale = np.array_equal(out.scale.astype(np.float32), params.scale.astype(np.float32))
    if not (same_scale and np.array_equal(out.zero, params.zero)):
        return Decline(f"requantizes: scale or zero point differs from {describe(dq)}", dq)
    if not bypass(q, q_in, q.outputs[0]):
        return Decline("an exact requantization that cannot be removed without renaming a graph output")
    edit.dead.append(dq.outputs[0])
    return None


__all__ = [
    "MoveIntoIntegerDomain", "Editor", "QuantParams", "quant_params", "int_dtype", "int_lower_bound", "rank_of",
    "is_op", "describe", "per_tensor", "scalar", "dq_of_activation", "NARROW", "INT8", "UINT8", "SHAPE_OPS",
    "PASS_THROUGH",
]
