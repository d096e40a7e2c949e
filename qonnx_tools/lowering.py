"""QCDQ forms of the QONNX ops: what a lowering or raising rule gets and returns, shared emitters.

This module sits below ``qonnx_tools.ops``: each op module owns its rules and imports
the pieces they share from here; the drivers in ``qonnx_tools.convert`` (``qcdq``,
``qonnx_raise``) import the same pieces to run them.

Lowering (QONNX -> QCDQ). Each op's ``lower_qcdq(cls, node, ctx) -> LoweringOutcome``
(IntQuant, BipolarQuant, Trunc v1/v2, FloatQuant, MultiThreshold; the base class
declines) reads the node (its inputs through use-def links, constants through
``ctx.constant``) and either

* returns a :class:`Rewrite`: new nodes and initializers (not yet in the graph)
  whose ``output`` computes the node's output, the lowest ai.onnx opset the
  emitted nodes need, and a short description of the pattern; or
* returns a :class:`~qonnx_tools.decline.Decline` with the reason (nothing was changed).

Rules never edit the graph; the driver (``qonnx_tools.convert.qcdq``) inserts
the nodes, redirects the uses and removes what became unused.

Numerics contract: every rewrite computes, in onnxruntime (CPU, float32), the
same numbers as the op's ``execute`` -- value for value (``-0.0`` may come out as
``+0.0``). Where standard QuantizeLinear/DequantizeLinear cannot be exact, rules
emit plain arithmetic in the order ``execute`` uses.

Shared pieces used by several rules live here: :class:`Builder` (creates nodes
and initializers and tracks the opset they need), :func:`granularity` (per-tensor,
per-axis or blocked parameters, chosen from the parameters' shapes),
:data:`CONTAINERS` and :func:`choose_container`, and the emitters
:func:`emit_int_qdq` (Q -> [Clip] -> DQ) and :func:`emit_dequantized_constant`
(integer/float8 initializer -> DQ).

Raising (QCDQ -> QONNX). The driver (``qonnx_tools.convert.qonnx_raise``) walks a
``QuantizeLinear -> [Clip ...] -> DequantizeLinear`` chain (or a DequantizeLinear of a
constant), lays its parameters out for QONNX and describes it as a :class:`QdqChain`;
each op's ``raise_qdq(cls, chain)`` answers with the QONNX node that computes the same
values (:class:`Raised`), a Decline (the chain is the op's kind but has no form as
it), or None (not the op's kind of container).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Sequence

import ml_dtypes
import numpy as np

from qonnx_tools._ir import ir
from qonnx_tools.decline import Decline
from qonnx_tools.domains import canonical_domain
from qonnx_tools.node_context import NodeContext

if TYPE_CHECKING:
    from qonnx_tools.ops.base import QonnxOp

# ``constant_array`` and ``decode_attributes`` are imported where used: both modules import the
# executor package, whose ``__init__`` imports the engine, which imports ``qonnx_tools.ops`` --
# and the op modules import this module.

#: Highest ai.onnx opset any rule needs for its preferred form (int16/int4/blocked Q/DQ).
HIGHEST_FORM_OPSET = 21

#: Lowest opset of the standard ops rules emit (the form as we emit it: e.g. Unsqueeze and
#: ReduceSum with axes as an input need 13, Clip with min/max inputs 11). Unlisted: 8.
OP_MIN_OPSET: dict[str, int] = {
    "QuantizeLinear": 10,
    "DequantizeLinear": 10,
    "Clip": 11,
    "Round": 11,
    "GreaterOrEqual": 12,
    "LessOrEqual": 12,
    "Unsqueeze": 13,
    "ReduceSum": 13,
    "Where": 9,
    "Sign": 9,
}

# -- outcomes -------------------------------------------------------------------------------


@dataclass
class Rewrite:
    """Replacement for one node: ``nodes`` (in order) compute ``output`` from the node's inputs
    and the new ``initializers``.

    ``kind`` is ``"qcdq"`` (QuantizeLinear/[Clip]/DequantizeLinear on a tensor),
    ``"dequantized-constant"`` (integer/float8 initializer + DequantizeLinear),
    ``"emulation"`` (plain standard arithmetic) or ``"folded"`` (a constant initializer).
    """

    nodes: list[ir.Node]
    initializers: list[ir.Value]
    output: ir.Value
    min_opset: int
    pattern: str
    kind: str


#: What a ``lower_qcdq`` rule returns.
LoweringOutcome = Rewrite | Decline


# -- context --------------------------------------------------------------------------------


@dataclass
class LoweringContext:
    """What a rule may use: the model, the target opset and options, name allocation.

    ``opset`` is the ai.onnx opset of the result; every node a rule emits must be
    valid at it. ``economical`` is set while the driver looks for the lowest opset
    that expresses a model: among exact Q/DQ forms, rules then pick the one that
    needs the lowest opset (int8 + Clip rather than int4), never emulation over Q/DQ.
    """

    model: ir.Model
    opset: int
    keep_float_weights: bool = False
    economical: bool = False
    used_names: set[str] = field(default_factory=set)
    qonnx_opset: int = 0

    def constant(self, value: ir.Value | None) -> np.ndarray | None:
        """The value's constant array (initializer, also when listed as graph input, or Constant node)."""
        from qonnx_tools.constants import constant_array

        return constant_array(value)

    def node_context(self, node: ir.Node, op_cls: Any) -> NodeContext:
        """Resolved attributes of ``node`` for ``op_cls`` (defaults filled in, checked) as a NodeContext."""
        from qonnx_tools.executor.attributes import decode_attributes

        where = f"node {node.name!r} ({node.op_type})"
        op_cls.check_inputs(len(node.inputs), where)
        attrs = op_cls.resolve_attributes(decode_attributes(node), where)
        return NodeContext(
            name=node.name or "",
            op_type=node.op_type,
            domain=canonical_domain(node.domain),
            opset=self.qonnx_opset,
            attrs=attrs,
            n_outputs=len(node.outputs),
        )

    def builder(self, node: ir.Node) -> "Builder":
        return Builder(self, node)


def x_float32(value: ir.Value) -> Decline | None:
    """None when ``value`` is (or may be) float32, else the Decline of a rule that needs float32 X."""
    if value is None:
        return Decline("input X is missing")
    if value.dtype is not None and value.dtype != ir.DataType.FLOAT:
        return Decline(f"input X is {value.dtype.name}, only float32 is lowered (the executor computes in X's dtype)")
    return None


def x_shape(value: ir.Value, const: np.ndarray | None = None) -> tuple[int | None, ...] | None:
    """X's shape with None for unknown dimensions, or None when even the rank is unknown."""
    if const is not None:
        return tuple(const.shape)
    if value.shape is None:
        return None
    return tuple(d if isinstance(d, int) else None for d in value.shape)


# -- builder --------------------------------------------------------------------------------


class Builder:
    """Creates the nodes and initializers of one rewrite, named after the replaced node."""

    def __init__(self, ctx: LoweringContext, node: ir.Node) -> None:
        self.ctx = ctx
        self.base = node.name or (node.outputs[0].name if node.outputs and node.outputs[0].name else node.op_type)
        self.nodes: list[ir.Node] = []
        self.initializers: list[ir.Value] = []
        self.min_opset = 1
        self.features: list[str] = []

    def _name(self, hint: str) -> str:
        base = f"{self.base}/{hint}"
        name, k = base, 0
        while name in self.ctx.used_names:
            k += 1
            name = f"{base}_{k}"
        self.ctx.used_names.add(name)
        return name

    def require(self, opset: int, feature: str | None = None) -> None:
        """Record that the rewrite needs ai.onnx ``opset`` (for ``feature``)."""
        if opset > self.min_opset:
            self.min_opset = opset
        if feature and feature not in self.features:
            self.features.append(feature)

    def const(self, hint: str, array: Any, dtype: Any = None) -> ir.Value:
        """A new initializer holding ``array`` (cast to ``dtype`` when given)."""
        arr = np.asarray(array) if dtype is None else np.asarray(array).astype(dtype)
        arr = np.array(arr, order="C", copy=True)
        name = self._name(hint)
        tensor = ir.Tensor(arr, name=name)
        value = ir.Value(name=name, const_value=tensor)  # no type/shape: no value_info entry
        self.initializers.append(value)
        return value

    def f32(self, hint: str, array: Any) -> ir.Value:
        return self.const(hint, np.asarray(array, dtype=np.float32))

    def op(self, op_type: str, inputs: Sequence[ir.Value | None], hint: str | None = None, **attrs: Any) -> ir.Value:
        """Append a standard node and return its (single) output."""
        self.require(OP_MIN_OPSET.get(op_type, 8))
        name = self._name(hint or op_type)
        out = ir.Value(name=name)
        # node and output share the name (separate namespaces; the driver reserves node names too)
        node = ir.node(op_type, list(inputs), attrs or None, outputs=[out], name=name)
        self.nodes.append(node)
        return out

    def rewrite(self, output: ir.Value, pattern: str, kind: str) -> Rewrite:
        return Rewrite(self.nodes, self.initializers, output, self.min_opset, pattern, kind)


# -- granularity ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Granularity:
    """How quantization parameters vary over X, in Q/DQ terms.

    ``kind``: "tensor", "axis" (one value per index of ``axis``) or "block" (one value
    per ``block_size`` consecutive indices of ``axis``). ``pshape`` is the parameters'
    common shape right-aligned to X (leading 1s added when X's rank is known).
    """

    kind: str
    pshape: tuple[int, ...]
    axis: int | None = None  # ONNX axis of X (negative when X's rank is unknown)
    block_size: int | None = None
    dim: int | None = None  # index of the varying dimension within pshape
    block_shape: tuple[int, ...] | None = None  # parameter shape for blocked Q/DQ

    @property
    def min_opset(self) -> int:
        return {"tensor": 10, "axis": 13, "block": 21}[self.kind]

    def attrs(self) -> dict[str, int]:
        if self.kind == "axis":
            return {"axis": int(self.axis)}
        if self.kind == "block":
            return {"axis": int(self.axis), "block_size": int(self.block_size)}
        return {}

    def describe(self) -> str:
        if self.kind == "tensor":
            return "per-tensor"
        if self.kind == "axis":
            return f"per-axis(axis={self.axis})"
        return f"blocked(axis={self.axis}, block_size={self.block_size})"

    def qdq_param(self, arr: np.ndarray) -> np.ndarray:
        """A parameter in the layout QuantizeLinear/DequantizeLinear want (scalar, 1-D, or blocked)."""
        arr = np.broadcast_to(_fit(arr, len(self.pshape)), self.pshape)
        if self.kind == "tensor":
            return np.asarray(arr).reshape(-1)[:1].reshape(())
        if self.kind == "axis":
            return np.ascontiguousarray(np.moveaxis(arr, self.dim, -1).reshape(-1, arr.shape[self.dim])[0])
        return np.ascontiguousarray(np.broadcast_to(arr, self.block_shape))

    def x_param(self, arr: np.ndarray) -> np.ndarray:
        """A parameter in a shape that broadcasts against X (blocks expanded), for plain arithmetic."""
        arr = np.asarray(arr)
        if self.kind != "block":
            return arr
        arr = np.broadcast_to(_fit(arr, len(self.pshape)), self.pshape)
        return np.ascontiguousarray(np.repeat(arr, self.block_size, axis=self.dim))


def _pad(shape: tuple[int, ...], rank: int) -> tuple[int, ...]:
    return (1,) * max(0, rank - len(shape)) + tuple(shape)


def _fit(arr: Any, rank: int) -> np.ndarray:
    """``arr`` right-aligned to ``rank`` dimensions (leading 1s added or dropped)."""
    arr = np.asarray(arr)
    while arr.ndim > rank and arr.shape[0] == 1:
        arr = arr.reshape(arr.shape[1:])
    return arr.reshape(_pad(arr.shape, rank))


def granularity(param_shapes: Sequence[tuple[int, ...]], xshape: tuple[int | None, ...] | None) -> Granularity | str:
    """The Q/DQ granularity that parameters of these shapes have over X (or a reason there is none).

    Chosen from the shapes only, never from the values: all-1 shapes are per-tensor;
    one dimension different from 1 is per-axis when it equals X's dimension there
    (or X's dimension is unknown). Blocked (group-wise) when exactly one dimension is
    smaller than X's and divides it, every other dimension being 1 or X's (ONNX's
    blocked layout; such shapes do not broadcast with NumPy rules, so the executor
    rejects them -- their meaning is ONNX's: each value covers ``block_size``
    consecutive indices). Several dimensions equal to X's (per-element) have no
    Q/DQ granularity.
    """
    try:
        pshape = tuple(np.broadcast_shapes(*[tuple(s) for s in param_shapes]))
    except ValueError:
        return f"parameter shapes {list(param_shapes)} do not broadcast together"
    rank = len(xshape) if xshape is not None else None
    if rank is not None:
        while len(pshape) > rank and pshape[0] == 1:
            pshape = pshape[1:]
        if len(pshape) > rank:
            return f"parameters of shape {pshape} have more dimensions than X {xshape}"
        pshape = _pad(pshape, rank)
    varying = [i for i, d in enumerate(pshape) if d != 1]
    if not varying:
        return Granularity("tensor", pshape)
    if xshape is not None:
        smaller = [i for i in varying if xshape[i] is not None and pshape[i] < xshape[i]]
        others = [i for i in varying if i not in smaller]
        if any(xshape[i] is not None and pshape[i] > xshape[i] for i in varying):
            return f"parameters of shape {pshape} are larger than X {xshape}"
        if len(smaller) == 1 and all(xshape[i] == pshape[i] for i in others):
            dim = smaller[0]
            n, xdim = pshape[dim], xshape[dim]
            if xdim % n:
                return f"parameters of shape {pshape} do not divide X {xshape} on axis {dim}"
            if any(d is None for d in xshape):
                return f"blocked parameters {pshape} need X's static shape, X is {xshape}"
            block_shape = tuple(n if i == dim else d for i, d in enumerate(xshape))
            return Granularity("block", pshape, axis=dim, block_size=xdim // n, dim=dim, block_shape=block_shape)
        if smaller:
            return f"parameters of shape {pshape} do not match X {xshape}"
    if len(varying) > 1:
        return f"parameters of shape {pshape} vary along several axes (no Q/DQ granularity expresses that)"
    dim = varying[0]
    axis = dim if rank is not None else dim - len(pshape)
    return Granularity("axis", pshape, axis=axis, dim=dim)


# -- containers -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Container:
    """An integer (or float8) element type Q/DQ can use, its range and the opset it needs."""

    name: str
    dtype: Any
    lo: float
    hi: float
    min_opset: int
    quantizable: bool = True  # QuantizeLinear can produce it (int32 is DequantizeLinear-only)
    clip_ok: bool = False  # onnxruntime's CPU Clip has a kernel for it

    @property
    def bits(self) -> int:
        return np.dtype(self.dtype).itemsize * 8 if self.name not in ("int4", "uint4") else 4


INT4 = Container("int4", ml_dtypes.int4, -8, 7, 21)
UINT4 = Container("uint4", ml_dtypes.uint4, 0, 15, 21)
INT8 = Container("int8", np.int8, -128, 127, 10, clip_ok=True)
UINT8 = Container("uint8", np.uint8, 0, 255, 10, clip_ok=True)
INT16 = Container("int16", np.int16, -(2**15), 2**15 - 1, 21)
UINT16 = Container("uint16", np.uint16, 0, 2**16 - 1, 21)
INT32 = Container("int32", np.int32, -(2**31), 2**31 - 1, 10, quantizable=False)
FLOAT8E4M3FN = Container("float8e4m3fn", ml_dtypes.float8_e4m3fn, -448.0, 448.0, 19)
FLOAT8E5M2 = Container("float8e5m2", ml_dtypes.float8_e5m2, -57344.0, 57344.0, 19)

#: Integer containers, smallest first; at equal size the signed one first.
CONTAINERS: tuple[Container, ...] = (INT4, UINT4, INT8, UINT8, INT16, UINT16, INT32)


def choose_container(
    lo: int,
    hi: int,
    zero_points: np.ndarray,
    *,
    signed: bool,
    opset: int,
    economical: bool,
    activation: bool,
) -> tuple[Container, bool] | None:
    """The container for integer codes in [lo, hi] with these zero-points, and whether the
    range must be clamped inside it (narrower than the container).

    Activations need a container QuantizeLinear produces; a clamp is possible only
    where it can be done exactly (int8/uint8 Clip; 16-bit in float after DQ; never int4).
    Constants are pre-quantized, so any container holding [lo, hi] works.
    ``economical`` orders candidates by the opset they need first (then by size).
    """
    zmin = float(np.min(zero_points)) if np.size(zero_points) else 0.0
    zmax = float(np.max(zero_points)) if np.size(zero_points) else 0.0
    candidates = []
    for order, c in enumerate(CONTAINERS):
        if c.min_opset > opset or lo < c.lo or hi > c.hi or zmin < c.lo or zmax > c.hi:
            continue
        if activation and not c.quantizable:
            continue
        clamp = activation and (lo != c.lo or hi != c.hi)
        if clamp and c.name in ("int4", "uint4"):
            continue
        sign_rank = 0 if (c.lo < 0) == signed else 1
        size_rank = order // 2 if c is not INT32 else 3
        key = (c.min_opset, size_rank, sign_rank) if economical else (size_rank, sign_rank)
        candidates.append((key, c, clamp))
    if not candidates:
        return None
    candidates.sort(key=lambda t: t[0])
    _, container, clamp = candidates[0]
    return container, clamp


# -- emitters ---------------------------------------------------------------------------------


def emit_int_qdq(
    b: Builder,
    x: ir.Value,
    gran: Granularity,
    scale: np.ndarray,
    zeropt: np.ndarray,
    container: Container,
    lo: int,
    hi: int,
    clamp: bool,
) -> tuple[ir.Value, str]:
    """QuantizeLinear -> [Clip] -> DequantizeLinear equal to IntQuant(ROUND) with these parameters.

    ``scale`` must be positive, ``zeropt`` integer-valued (both float arrays broadcasting
    to X). Exactness:

    * zero-point 0: QuantizeLinear computes ``rint(x / scale)`` (onnxruntime divides;
      checked by tests), which is IntQuant's ``rint(x / scale + 0)``.
    * zero-point != 0: IntQuant rounds ``fl(x / scale + zp)`` while QuantizeLinear adds
      the zero-point after rounding ``x / scale``; the float addition can move a value
      onto or across a .5 tie, so the two differ near ties. The exact form computes
      ``t = x / scale + zp`` with Div and Add (same order as IntQuant) and quantizes ``t``
      with scale 1 and zero-point 0; DequantizeLinear then applies the real scale and
      zero-point: ``(q - zp) * scale``, as IntQuant does.
    * clamp in int8/uint8: Clip on the integers. In int16/uint16 (no integer Clip kernel
      in onnxruntime) the clamp is applied after DequantizeLinear in float: the output
      ``fl((q - zp) * scale)`` is monotonic in q for scale > 0, so clamping it to
      ``fl((lo - zp) * scale)`` / ``fl((hi - zp) * scale)`` equals dequantizing the clamped q.
    """
    b.require(gran.min_opset, None if gran.kind == "tensor" else gran.describe())
    b.require(container.min_opset, None if container.min_opset <= 13 else container.name)
    qattrs = gran.attrs()
    s_q = b.f32("scale", gran.qdq_param(scale))
    z_q = b.const("zp", gran.qdq_param(zeropt), container.dtype)
    nonzero = bool(np.any(np.asarray(zeropt) != 0))
    if not nonzero:
        q = b.op("QuantizeLinear", [x, s_q, z_q], "q", **qattrs)
        head = "QuantizeLinear"
    else:
        t = b.op("Div", [x, b.f32("scale_x", gran.x_param(scale))], "div")
        t = b.op("Add", [t, b.f32("zp_x", gran.x_param(zeropt))], "add_zp")
        q = b.op("QuantizeLinear", [t, b.f32("one", 1.0), b.const("zero", 0, container.dtype)], "q")
        head = "Div->Add->QuantizeLinear(1)"
    clip_text = tail = ""
    if clamp and container.clip_ok:
        b.require(12)
        q = b.op("Clip", [q, b.const("min", lo, container.dtype), b.const("max", hi, container.dtype)], "clip")
        clip_text = f"->Clip[{lo},{hi}]"
    y = b.op("DequantizeLinear", [q, s_q, z_q], "dq", **qattrs)
    if clamp and not container.clip_ok:
        s_x = np.asarray(gran.x_param(scale), dtype=np.float32)
        z_x = np.asarray(gran.x_param(zeropt), dtype=np.float32)
        lo_f = (np.float32(lo) - z_x) * s_x
        hi_f = (np.float32(hi) - z_x) * s_x
        y = emit_clamp(b, y, lo_f, hi_f, "clamp")
        tail = f"->float Clip/Max/Min[codes {lo}..{hi}]"
    pattern = f"{head}({container.name}){clip_text}->DequantizeLinear{tail}, {gran.describe()}"
    return y, pattern


def emit_dequantized_constant(
    b: Builder,
    codes: np.ndarray,
    gran: Granularity,
    scale: np.ndarray,
    zeropt: np.ndarray | None,
    container: Container,
) -> tuple[ir.Value, str]:
    """A pre-quantized constant: ``codes`` stored in ``container`` + DequantizeLinear(scale, zp).

    DequantizeLinear computes ``(q - zp) * scale`` in float32 -- the quantizers'
    last two steps -- so the result equals the quantizer's output on the constant.
    The zero point input is always present (zeros when ``zeropt`` is None).
    """
    b.require(gran.min_opset, None if gran.kind == "tensor" else gran.describe())
    b.require(container.min_opset, None if container.min_opset <= 13 else container.name)
    q = b.const("codes", codes, container.dtype)
    # The zero point is written even when it is 0: onnxruntime's QDQ fusion (QGemm,
    # MatMulIntegerToFloat) and qonnx's QCDQToQuant both want the three-input form.
    zp = np.zeros(np.shape(gran.qdq_param(scale))) if zeropt is None else gran.qdq_param(zeropt)
    inputs = [q, b.f32("scale", gran.qdq_param(scale)), b.const("zp", zp, container.dtype)]
    y = b.op("DequantizeLinear", inputs, "dq", **gran.attrs())
    return y, f"{container.name} initializer->DequantizeLinear, {gran.describe()}"


def emit_clamp(b: Builder, x: ir.Value, lo: Any, hi: Any, hint: str = "clamp") -> ir.Value:
    """``min(max(x, lo), hi)`` in float: Clip for scalar bounds, Max/Min for tensor bounds."""
    lo = np.asarray(lo, dtype=np.float32)
    hi = np.asarray(hi, dtype=np.float32)
    if lo.size == 1 and hi.size == 1 and lo.ndim <= 1 and hi.ndim <= 1:
        return b.op("Clip", [x, b.f32(f"{hint}_min", lo.reshape(())), b.f32(f"{hint}_max", hi.reshape(()))], hint)
    y = b.op("Max", [x, b.f32(f"{hint}_min", lo)], f"{hint}_lo")
    return b.op("Min", [y, b.f32(f"{hint}_max", hi)], f"{hint}_hi")


def emit_fold(b: Builder, value: np.ndarray) -> tuple[ir.Value, str]:
    """The node's output computed now (a float initializer)."""
    out = b.f32("folded", value)
    return out, f"folded to a float32 initializer {tuple(np.shape(value))}"


def pow2(exponents: np.ndarray) -> np.ndarray:
    """Exact float32 powers of two ``2**e`` (e integer, within float32's range)."""
    return np.ldexp(np.float32(1.0), np.asarray(exponents, dtype=np.int32)).astype(np.float32)


def same_value(a: np.ndarray, b: np.ndarray) -> bool:
    """Element-wise equal, NaN equal to NaN (and -0.0 equal to 0.0)."""
    a = np.asarray(a)
    b = np.asarray(b)
    return a.shape == b.shape and bool(np.all((a == b) | (np.isnan(a) & np.isnan(b))))


# -- raising (QCDQ -> QONNX) --------------------------------------------------------------------


@dataclass(frozen=True)
class QdqChain:
    """What a raise rule gets: a ``QuantizeLinear -> [Clip ...] -> DequantizeLinear`` chain (or a
    DequantizeLinear of a constant) as the driver read it.

    ``container`` is the element type of the quantized values (int8, uint4, float8e4m3fn...),
    ``int_range`` its (min, max) when it is an integer type (None otherwise); ``clip_lo`` /
    ``clip_hi`` bound the integers when there are Clips (``-inf`` / ``inf`` otherwise), ``n_clips``
    counts them; ``zeropt`` is the DequantizeLinear's zero-point laid out for QONNX (broadcasting
    to X; its own dtype), None when it has none; ``saturate`` is the QuantizeLinear's ``saturate``
    (None for a constant, which has no QuantizeLinear).
    """

    container: np.dtype
    int_range: tuple[int, int] | None
    clip_lo: float
    clip_hi: float
    n_clips: int
    zeropt: np.ndarray | None
    saturate: bool | None


@dataclass
class Raised:
    """What a raise rule returns: the QONNX node that computes the chain's values.

    ``op`` is the op definition whose ``execute`` computes it, ``op_type`` the name written
    (IntQuant is written ``Quant``, the name every QONNX reader knows); ``zeropt`` is the
    zero-point input (None for ops without one) and ``params`` the further inputs, by name
    (the new initializers are named after them), in input order.
    """

    op: type[QonnxOp]
    op_type: str
    attrs: dict[str, Any]
    zeropt: np.ndarray | None
    params: dict[str, np.ndarray]
