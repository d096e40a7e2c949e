"""Raise standard Q/DQ quantization (QCDQ, onnxruntime QDQ, TensorRT QDQ) to QONNX ``Quant``/``FloatQuant``.

``to_qonnx(model)`` rewrites, in place, every DequantizeLinear whose integer input
has a known origin into one QONNX node that computes the same values:

* ``QuantizeLinear -> [Clip ...] -> DequantizeLinear`` on a float tensor (an
  activation, or a float weight as Brevitas' dynamo exporter writes them) becomes
  ``Quant(X, scale, zeropt, bitwidth)`` on the QuantizeLinear's float input.
* ``DequantizeLinear(integer constant)``, optionally with a ``Clip`` on the
  constant (Brevitas' TorchScript QCDQ weights and biases, onnxruntime's
  quantized initializers), becomes ``Quant`` on a new float initializer holding
  the DequantizeLinear's output values ("restored" weights). Re-quantizing those
  values with the Quant's parameters gives them back exactly; this is checked
  for every tensor during conversion (IntQuant/FloatQuant numerics), and a
  tensor for which it would not hold is left unconverted.
* A float8/float4 container (float8e4m3fn, float8e4m3fnuz, float8e5m2,
  float8e5m2fnuz, float4e2m1) becomes ``FloatQuant`` with the format's exponent
  and mantissa widths, exponent bias and largest finite value, ``has_inf``,
  ``has_nan``, ``has_subnormal=1`` and ``saturation`` from QuantizeLinear's
  ``saturate`` (always 1 for formats without inf/NaN, as ONNX casts those).
  Results equal QuantizeLinear's bit for bit, ±inf and NaN included, except
  that the FNUZ formats have no -0: ONNX gives +0 where FloatQuant keeps -0.

Fan-out is handled in both directions: a DequantizeLinear read by several nodes
gives one Quant read by all of them; a QuantizeLinear (or Clip) read by several
DequantizeLinear nodes gives one Quant per DequantizeLinear, and the
QuantizeLinear disappears once nothing else reads it.

Parameters
----------
* scale: the DequantizeLinear's (QuantizeLinear's must be the same values, axis
  and block size, otherwise the pair is a requantization, not a quantizer).
  Per-tensor scales become scalars; per-axis scales are reshaped to rank(X) with
  the channel dimension at ``axis`` (e.g. ``[1, C, 1, 1]``); blocked scales
  (``block_size``) are expanded to one scale per element along ``axis`` (the
  ``block_size`` repeats written out, trimmed to X's length): QONNX has no
  blocks, and the explicit form needs no extra Reshape nodes and works for
  lengths that are not a multiple of the block size, at the cost of a scale
  tensor as large as X. Per-axis and blocked activations need X's rank (and
  length along ``axis``); when the model does not record them, shapes are
  inferred once (``InferShapes``, which only adds type/shape information).
  Scales stay in their own float dtype (float32 for all usual models).
* zero-point: float32, 0 when the optional input is omitted, same shape rules.
* bit width (float32 scalar, as Brevitas writes it), ``signed`` and ``narrow``
  come from the integer range the stored values can take: the container's
  range (int8 -> [-128, 127], uint8 -> [0, 255], int16, uint16, int32, int4,
  uint4, int2, uint2) intersected with the Clip bounds. [0, 7] -> 3-bit
  unsigned; [-127, 127] -> 8-bit signed narrow; [-4, 3] -> 3-bit signed;
  [0, 2**b - 2] -> b-bit unsigned narrow (QONNX's max_int rule). Ranges that
  are no QONNX range (e.g. [-3, 5]) stay unconverted. QONNX's range is on the
  stored integer (zero-point included), as is ONNX's, so asymmetric quantizers
  map one to one.
* TensorRT-style exports (pytorch_quantization: symmetric int8, scale =
  amax/127, zero-point 0, no Clip) become 8-bit signed, ``narrow=0``: the ONNX
  graph clamps to [-128, 127] and that is what is kept, so the raised model
  computes exactly what the ONNX model computes. A Clip to [-127, 127] would
  make it narrow.
* rounding_mode "ROUND" (half to even, as QuantizeLinear rounds).

Decisions
---------
* Op name: ``Quant`` (not ``IntQuant``): qonnx 0.x, FINN and Brevitas read and
  write ``Quant``; qonnx >= 1.0 reads it as ``IntQuant``. ``FloatQuant`` has one name.
* Domain ``qonnx.custom_op.general`` is imported at version 1 when the model
  does not import it yet (an existing import keeps its version). Quant and
  FloatQuant mean the same in versions 1 and 2 (only Trunc changed in 2), and
  version 1 is the one older readers know.
* New nodes are named after the DequantizeLinear they replace, with
  ``DequantizeLinear`` in the name spelled ``Quant``/``FloatQuant`` (Brevitas'
  own QONNX naming); the output keeps the DequantizeLinear's output name, so
  consumers and graph outputs are unchanged. Restored weights are named after
  the integer constant (onnxruntime's ``W_quantized`` -> ``W``, otherwise
  ``<name>_float``). Nodes and constants of a raised chain that nothing else
  reads are removed; nothing else is folded or touched.
* QONNX's Quant adds the zero-point before rounding (``round(x/s + zp)``, as
  Brevitas computes), QuantizeLinear after (``round(x/s) + zp``). Half-to-even
  rounding is not shift invariant for odd shifts, so with an odd zero-point an
  input exactly halfway between two steps (``x/s = k + 0.5``) lands on the other
  neighbour (one step); and for any non-zero zero-point float32 ``x/s + zp``
  can itself round onto or off a halfway point for inputs within one float32
  ulp (of ``|zp|``) of one. No single Quant reproduces QuantizeLinear there
  (shifting the zero-point by one shifts the clamp range off every QONNX range),
  so such activation quantizers are raised anyway and counted in ``notes``.
  Zero-points 0 are unaffected, and so are constants: integer weights become
  on-grid values, and a float weight behind a QuantizeLinear with a non-zero
  zero-point is checked; if a tie changes one of its values, the Quant reads
  the DequantizeLinear's values instead of the float weight (noted).
* Nothing is changed when something cannot be raised and ``allow_partial`` is
  False: the whole model is analysed first and ConversionError lists every
  node. With ``allow_partial`` the rest is raised and the result lists them.
* Where the rules live: this module walks the chains, checks Q against DQ, lays
  the parameters out and rewrites; what a container and its range become (the
  Quant and FloatQuant parameters above) is each op's ``raise_qdq`` rule
  (``qonnx_tools.ops.intquant``, ``qonnx_tools.ops.floatquant``), which gets the
  chain as a ``qonnx_tools.lowering.QdqChain``.

What stays
----------
* ``DynamicQuantizeLinear``: its scale and zero-point are computed from the data
  at run time; QONNX has no such quantizer. It is kept and named in ``notes``;
  DequantizeLinear nodes reading it stay too and are listed in ``unconverted``.
* A QuantizeLinear whose integer output feeds anything but raisable
  DequantizeLinear chains (QLinearConv, a graph output...), a DequantizeLinear
  of a run-time integer tensor (graph input, another op), pairs whose Q and DQ
  parameters differ, non-constant parameters, Clip ranges that are no QONNX
  range, float8e8m0 and other containers without a QONNX form: listed in
  ``unconverted`` with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import ml_dtypes
import numpy as np

from qonnx_tools import ops as qonnx_ops
from qonnx_tools._ir import ir
from qonnx_tools.constants import constant_array
from qonnx_tools.convert.result import ConversionResult, Unconverted
from qonnx_tools.decline import Decline
from qonnx_tools.domains import QONNX, STANDARD, opset_of
from qonnx_tools.executor.kernels.quantize_linear import int_range
from qonnx_tools.lowering import QdqChain, Raised
from qonnx_tools.node_context import NodeContext
from qonnx_tools.ops.base import QonnxOp
from qonnx_tools.ops.floatquant import FLOAT_FORMATS  # noqa: F401  (public here: see __all__)
from qonnx_tools.passes._rewrite import all_value_names, unique_name

__all__ = ["to_qonnx", "QONNX_OPSET_VERSION", "FLOAT_FORMATS"]

#: Version of the QONNX domain imported when the model has none (see module docstring).
QONNX_OPSET_VERSION = 1


_FLOAT_SCALE_DTYPES = {np.dtype(t) for t in (np.float16, np.float32, np.float64, ml_dtypes.bfloat16)}


# ---------------------------------------------------------------------------------------------
# small helpers


def _is_op(node: ir.Node | None, op_type: str) -> bool:
    return node is not None and node.op_type == op_type and node.domain in (STANDARD, "ai.onnx")


def _int_attr(node: ir.Node, key: str, default: int) -> int:
    attr = node.attributes.get(key)
    return default if attr is None else int(attr.value)


def _float_attr(node: ir.Node, key: str) -> float | None:
    attr = node.attributes.get(key)
    return None if attr is None else float(attr.value)


def _input(node: ir.Node, i: int) -> ir.Value | None:
    return node.inputs[i] if len(node.inputs) > i else None


def _label(node: ir.Node) -> str:
    if node.name:
        return node.name
    out = node.outputs[0].name if node.outputs else None
    return out or f"<unnamed {node.op_type}>"


def _static_shape(value: ir.Value | None) -> tuple[int | None, ...] | None:
    """Shape of a value (dims that are not ints become None), or None when unknown."""
    if value is None:
        return None
    if value.const_value is not None:
        return tuple(int(d) for d in value.const_value.shape)
    if value.shape is None:
        return None
    return tuple(d if isinstance(d, int) else None for d in value.shape)


# ---------------------------------------------------------------------------------------------
# analysis


@dataclass
class _Plan:
    """Everything needed to replace one DequantizeLinear."""

    dq: ir.Node
    quantize: ir.Node | None  # the QuantizeLinear (activation / float weight), else None
    clips: list[ir.Node]
    int_source: ir.Value | None  # integer constant (weights), else None
    op: type[QonnxOp]  # the op whose raise rule gave the node (its ``execute`` checks restored constants)
    op_type: str  # the name written: "Quant" or "FloatQuant"
    scale: np.ndarray
    zeropt: np.ndarray | None  # Quant only
    attrs: dict[str, Any]
    params: dict[str, np.ndarray]  # further inputs in order (bitwidth / e, m, bias, max_val)
    restored: np.ndarray | None = None  # float weights for DQ(constant)
    nonzero_zp_activation: bool = False
    tie_fallback: bool = False  # float constant replaced by its dequantized values (see _check_float_constant)
    inputs_to_release: list[ir.Value] = field(default_factory=list)


class _Analyser:
    def __init__(self, model: ir.Model) -> None:
        self.model = model
        self.opset = opset_of(model, STANDARD, 1) or 1

    # -- containers and parameters -------------------------------------------------------
    def _const(self, value: ir.Value | None, what: str) -> np.ndarray | None:
        if value is None:
            return None
        array = constant_array(value)
        if array is None:
            raise Decline(f"{what} is computed at run time", value)
        return array

    def _quantize_container(self, q: ir.Node, zp: np.ndarray | None) -> np.dtype:
        code = _int_attr(q, "output_dtype", 0)
        if code:
            return np.dtype(ir.DataType(code).numpy())
        return np.dtype(zp.dtype) if zp is not None else np.dtype(np.uint8)

    def _scale_dtype(self, scale: np.ndarray) -> np.dtype:
        dtype = np.dtype(scale.dtype)
        if dtype not in _FLOAT_SCALE_DTYPES:
            raise Decline(f"scale of type {dtype} has no QONNX form")
        return dtype

    def _check_dq_output(self, dq: ir.Node, scale_dtype: np.dtype) -> None:
        code = _int_attr(dq, "output_dtype", 0)
        if code and np.dtype(ir.DataType(code).numpy()) != scale_dtype:
            raise Decline("output_dtype differs from the scale's type")

    # -- the walk ----------------------------------------------------------------------------
    def analyse(self, dq: ir.Node) -> _Plan:
        # where do the integers come from? (Clip* then QuantizeLinear or a constant)
        release: list[ir.Value] = []
        clips: list[ir.Node] = []
        current = dq.inputs[0]
        if current is None:
            raise Decline("has no input")
        producer = current.producer()
        while _is_op(producer, "Clip"):
            clips.append(producer)
            current = producer.inputs[0]
            producer = current.producer() if current is not None else None
        if current is None:
            raise Decline("Clip has no input")
        quantize = producer if _is_op(producer, "QuantizeLinear") else None
        ints = None if quantize is not None else constant_array(current)
        if quantize is None and ints is None:
            if _is_op(producer, "DynamicQuantizeLinear"):
                raise Decline(
                    "dequantizes a DynamicQuantizeLinear (scale computed from the data at run time; QONNX has no "
                    "equivalent)", producer
                )
            origin = "a graph input" if current.is_graph_input() else (
                f"computed by {producer.op_type}" if producer is not None else "of unknown origin"
            )
            raise Decline(f"its integer input is {origin}, not a QuantizeLinear or a constant", current,
                          *((producer,) if producer is not None else ()))

        scale_v = _input(dq, 1)
        scale = self._const(scale_v, "scale")
        if scale is None:
            raise Decline("has no scale")
        zp_v = _input(dq, 2)
        zp = self._const(zp_v, "zero-point")
        release.extend(v for v in (scale_v, zp_v) if v is not None)
        scale_dtype = self._scale_dtype(scale)
        self._check_dq_output(dq, scale_dtype)
        block = _int_attr(dq, "block_size", 0)
        axis = _int_attr(dq, "axis", 1)

        lo_clip, hi_clip = -np.inf, np.inf
        for clip in clips:
            lo_c, hi_c = self._clip_bounds(clip, release)
            lo_clip, hi_clip = max(lo_clip, lo_c), min(hi_clip, hi_c)

        int_source: ir.Value | None = None
        if quantize is not None:
            x_shape = _static_shape(quantize.inputs[0]) or _static_shape(dq.outputs[0])
            ndim = len(x_shape) if x_shape is not None else None
            container = self._check_pair(quantize, dq, scale, zp, axis, block, ndim, release)
        else:
            int_source = current
            release.append(current)
            container = np.dtype(ints.dtype)
            x_shape = tuple(ints.shape)
        if zp is not None and np.dtype(zp.dtype) != container:
            raise Decline(f"zero-point type {np.dtype(zp.dtype)} differs from the data type {container}")

        # parameter layout
        ndim = len(x_shape) if x_shape is not None else None
        per_tensor = block == 0 and scale.size == 1 and (zp is None or zp.size == 1)
        if not per_tensor and ndim is None:
            raise Decline("per-axis/blocked quantization of a tensor of unknown rank")
        if ndim is not None and not per_tensor:
            axis = axis + ndim if axis < 0 else axis
            if not 0 <= axis < ndim:
                raise Decline(f"axis {axis} out of range for rank {ndim}")
        if block and (x_shape is None or x_shape[axis] is None):
            raise Decline("blocked quantization of a tensor whose length along axis is unknown")
        q_scale = self._layout(scale, per_tensor, x_shape, axis, block, "scale")
        zp_num = None if zp is None else self._layout(zp, per_tensor, x_shape, axis, block, "zero-point")

        saturate = None if quantize is None else bool(_int_attr(quantize, "saturate", 1))
        chain = QdqChain(np.dtype(container), int_range(container), lo_clip, hi_clip, len(clips), zp_num, saturate)
        raised = _raise_rule(chain)
        plan = _Plan(
            dq=dq, quantize=quantize, clips=clips, int_source=int_source, op=raised.op, op_type=raised.op_type,
            scale=q_scale, zeropt=raised.zeropt, attrs=raised.attrs, params=raised.params,
            inputs_to_release=release,
        )
        if ints is not None:
            if clips:  # the DQ reads the clipped constant
                ints = np.clip(ints.astype(np.float64), lo_clip, hi_clip).astype(ints.dtype)
            plan.restored = self._restore(plan, ints, scale_dtype)
        elif plan.zeropt is not None and np.any(plan.zeropt):
            x_const = constant_array(quantize.inputs[0])
            if x_const is None:
                plan.nonzero_zp_activation = True
            else:
                self._check_float_constant(plan, x_const)
        return plan

    def _check_float_constant(self, plan: _Plan, x: np.ndarray) -> None:
        """QuantizeLinear on a float constant with a non-zero zero-point: if QONNX's rounding order
        changes some value (an exact tie), quantize the DequantizeLinear's values instead."""
        from qonnx_tools.executor.attributes import decode_attributes
        from qonnx_tools.executor.kernels.quantize_linear import dequantize_linear, quantize_linear

        def ctx(node: ir.Node) -> NodeContext:
            return NodeContext(name=_label(node), op_type=node.op_type, domain=STANDARD, opset=self.opset,
                               attrs=decode_attributes(node))

        q, dq = plan.quantize, plan.dq
        ints = quantize_linear(ctx(q), x, *(constant_array(v) for v in q.inputs[1:] if v is not None))
        for clip in plan.clips:
            lo, hi = self._clip_bounds(clip, [])
            ints = np.clip(ints.astype(np.float64), lo, hi).astype(ints.dtype)
        onnx_values = dequantize_linear(ctx(dq), ints, *(constant_array(v) for v in dq.inputs[1:] if v is not None))
        if not np.array_equal(_run_plan(plan, x), onnx_values):
            plan.restored = self._restore(plan, ints, np.dtype(onnx_values.dtype))
            plan.tie_fallback = True
            plan.inputs_to_release.append(q.inputs[0])

    def _clip_bounds(self, clip: ir.Node, release: list[ir.Value]) -> tuple[float, float]:
        lo, hi = -np.inf, np.inf
        if self.opset < 11 or "min" in clip.attributes or "max" in clip.attributes:
            lo_a, hi_a = _float_attr(clip, "min"), _float_attr(clip, "max")
            lo = lo if lo_a is None else lo_a
            hi = hi if hi_a is None else hi_a
        for i, name in ((1, "min"), (2, "max")):
            value = _input(clip, i)
            if value is None:
                continue
            array = constant_array(value)
            if array is None:
                raise Decline(f"a Clip of the chain has a run-time {name}", clip)
            if array.size != 1:
                raise Decline(f"a Clip of the chain has a {name} that is not a scalar", clip)
            release.append(value)
            bound = float(np.asarray(array, dtype=np.float64).reshape(()))
            if i == 1:
                lo = bound
            else:
                hi = bound
        return lo, hi

    def _check_pair(self, q: ir.Node, dq: ir.Node, scale: np.ndarray, zp: np.ndarray | None,
                    axis: int, block: int, ndim: int | None, release: list[ir.Value]) -> np.dtype:
        """The QuantizeLinear's container; Decline unless it quantizes with the DQ's parameters."""
        q_scale_v, q_zp_v = _input(q, 1), _input(q, 2)
        q_scale = self._const(q_scale_v, "QuantizeLinear scale")
        q_zp = self._const(q_zp_v, "QuantizeLinear zero-point")
        release.extend(v for v in (q_scale_v, q_zp_v) if v is not None)
        container = self._quantize_container(q, q_zp)
        if q_scale is None:
            raise Decline("QuantizeLinear has no scale")
        same_scale = q_scale.size == scale.size and np.dtype(q_scale.dtype) == np.dtype(scale.dtype) and np.array_equal(
            q_scale.reshape(-1), scale.reshape(-1)
        ) and (block == 0 or q_scale.shape == scale.shape)
        zq = np.zeros(1) if q_zp is None else q_zp.astype(np.float64).reshape(-1)
        zd = np.zeros(1) if zp is None else zp.astype(np.float64).reshape(-1)
        same_zp = (zq.size == zd.size or zq.size == 1 or zd.size == 1) and np.array_equal(
            np.broadcast_to(zq, max(zq.shape, zd.shape)), np.broadcast_to(zd, max(zq.shape, zd.shape))
        )
        per_axis = scale.size > 1 or (zp is not None and zp.size > 1) or block
        q_axis = _int_attr(q, "axis", 1)
        if ndim:  # -1 and ndim - 1 are the same axis
            q_axis, axis = q_axis % ndim, axis % ndim
        same_layout = _int_attr(q, "block_size", 0) == block and (not per_axis or q_axis == axis)
        if not (same_scale and same_zp and same_layout):
            raise Decline("its QuantizeLinear uses other parameters (a requantization, not one quantizer)", q)
        x = q.inputs[0]
        if x is not None and x.dtype is not None and np.dtype(x.dtype.numpy()).kind != "f":
            raise Decline("its QuantizeLinear quantizes a non-float tensor", q)
        precision = _int_attr(q, "precision", 0)
        if precision and np.dtype(ir.DataType(precision).numpy()) != np.dtype(scale.dtype):
            raise Decline("its QuantizeLinear divides in another precision than the scale's", q)
        return container

    def _layout(self, p: np.ndarray, per_tensor: bool, dims: tuple[int | None, ...] | None, axis: int,
                block: int, what: str) -> np.ndarray:
        """A parameter broadcastable to X (of shape ``dims``) in QONNX form (see the module docstring)."""
        p = np.asarray(p)
        if per_tensor:
            return p.reshape(())
        assert dims is not None  # checked by the caller
        ndim = len(dims)
        if block:
            length = dims[axis]
            if p.ndim != ndim:
                raise Decline(f"blocked {what} has rank {p.ndim}, data rank {ndim}")
            return np.ascontiguousarray(np.repeat(p, block, axis=axis).take(np.arange(length), axis=axis))
        if p.size == 1:
            return p.reshape(())
        if p.ndim != 1:
            raise Decline(f"per-axis {what} of shape {p.shape} is not 1-D")
        if dims[axis] is not None and dims[axis] != p.shape[0]:
            raise Decline(f"per-axis {what} has {p.shape[0]} values for a dimension of {dims[axis]}")
        shape = [1] * ndim
        shape[axis] = p.shape[0]
        return p.reshape(shape)

    def _restore(self, plan: _Plan, ints: np.ndarray, dtype: np.dtype) -> np.ndarray:
        """The DequantizeLinear's output values, checked to be a fixed point of the new node."""
        acc = np.float64 if dtype == np.float64 else np.float32
        scale = plan.scale.astype(acc)
        if plan.zeropt is not None:  # integer container
            centred = ints.astype(np.int64) - plan.zeropt.astype(np.int64)
        else:
            centred = ints.astype(np.float32)
        restored = (centred.astype(acc) * scale).astype(dtype)
        restored = np.ascontiguousarray(np.broadcast_to(restored, ints.shape))
        again = _run_plan(plan, restored)
        if again.shape != restored.shape or not np.array_equal(again, restored, equal_nan=True):
            raise Decline("re-quantizing the dequantized constant would not give it back exactly")
        return restored


def _raise_rule(chain: QdqChain) -> Raised:
    """The node the first op whose ``raise_qdq`` claims the chain gives; Decline when it declines
    or no op claims the container."""
    for op in qonnx_ops.all_ops():
        out = op.raise_qdq(chain)
        if isinstance(out, Decline):
            raise out
        if out is not None:
            return out
    raise Decline(f"data type {chain.container} has no QONNX form")


def _run_plan(plan: _Plan, x: np.ndarray) -> np.ndarray:
    """Execute the planned QONNX node on ``x`` with our op numerics."""
    op = plan.op
    where = f"node {_label(plan.dq)!r} ({plan.op_type})"
    attrs = op.resolve_attributes(plan.attrs, where)
    ctx = NodeContext(name=_label(plan.dq), op_type=plan.op_type, domain=QONNX, opset=QONNX_OPSET_VERSION, attrs=attrs)
    zeropt = [] if plan.zeropt is None else [plan.zeropt]
    return op.execute(ctx, x, plan.scale, *zeropt, *plan.params.values())


# ---------------------------------------------------------------------------------------------
# rewriting


class _Names:
    """Fresh value and node names (one scan of the model up front)."""

    def __init__(self, model: ir.Model) -> None:
        self.values: set[str] = all_value_names(model)
        self.nodes: set[str] = {node.name for graph in model.graphs() for node in graph if node.name}

    def value(self, base: str) -> str:
        return unique_name(base, self.values)

    def node(self, base: str) -> str:
        return unique_name(base, self.nodes)


def _node_base_name(dq: ir.Node, op_type: str) -> str:
    if dq.name:
        return dq.name.replace("DequantizeLinear", op_type) if "DequantizeLinear" in dq.name else dq.name
    out = dq.outputs[0].name
    return f"{out}_{op_type}" if out else op_type


def _weight_name(plan: _Plan, node_name: str) -> str:
    if plan.int_source is None:  # a float constant replaced by its dequantized values
        source = plan.quantize.inputs[0] if plan.quantize is not None else None
        return f"{source.name if source is not None and source.name else node_name}_dequantized"
    name = plan.int_source.name or f"{node_name}_weight"
    if name.endswith("_quantized") and len(name) > len("_quantized"):
        return name[: -len("_quantized")]
    return f"{name}_float"


def _add_initializer(graph: ir.Graph, names: _Names, base: str, array: np.ndarray) -> ir.Value:
    name = names.value(base)
    value = ir.Value(name=name, const_value=ir.Tensor(np.asarray(array), name=name))
    value.type = ir.TensorType(value.const_value.dtype)
    value.shape = ir.Shape(value.const_value.shape)
    graph.register_initializer(value)
    return value


def _release(value: ir.Value | None) -> None:
    """Remove a constant (initializer or Constant node) nothing reads any more."""
    if value is None or value.uses() or value.is_graph_output() or value.is_graph_input():
        return
    producer = value.producer()
    if producer is not None:
        if _is_op(producer, "Constant") and producer.graph is not None:
            producer.graph.remove(producer, safe=True)
        return
    graph = value.graph
    if value.is_initializer() and graph is not None and graph.initializers.get(value.name) is value:
        del graph.initializers[value.name]


def _remove_if_dead(node: ir.Node) -> bool:
    if node.graph is None:
        return False
    if any(out.uses() or out.is_graph_output() for out in node.outputs):
        return False
    node.graph.remove(node, safe=True)
    return True


def _apply(plan: _Plan, names: _Names) -> None:
    dq = plan.dq
    graph = dq.graph
    assert graph is not None
    names.nodes.discard(dq.name)  # the DequantizeLinear goes away: its name is free
    node_name = names.node(_node_base_name(dq, plan.op_type))
    if plan.restored is not None:
        x = _add_initializer(graph, names, _weight_name(plan, node_name), plan.restored)
    else:
        assert plan.quantize is not None
        x = plan.quantize.inputs[0]  # read now: an earlier rewrite may have replaced it
    inputs = [x, _add_initializer(graph, names, f"{node_name}_scale", plan.scale)]
    if plan.zeropt is not None:
        inputs.append(_add_initializer(graph, names, f"{node_name}_zeropt", plan.zeropt))
    for key, array in plan.params.items():
        inputs.append(_add_initializer(graph, names, f"{node_name}_{key}", array))
    attrs = [
        ir.AttrString(k, v) if isinstance(v, str) else ir.AttrInt64(k, int(v)) for k, v in plan.attrs.items()
    ]
    new_node = ir.Node(QONNX, plan.op_type, inputs, attrs, name=node_name, num_outputs=1)
    graph.insert_before(dq, new_node)

    old, new = dq.outputs[0], new_node.outputs[0]
    new.type, new.shape = old.type, old.shape
    if old.doc_string:
        new.doc_string = old.doc_string
    out_name = old.name
    ir.convenience.replace_all_uses_with(old, new, replace_graph_outputs=True)
    graph.remove(dq, safe=True)
    old.name = None
    new.name = out_name

    # drop what only this chain read
    for node in list(plan.clips) + ([plan.quantize] if plan.quantize is not None else []):
        if not _remove_if_dead(node):
            break
    for value in plan.inputs_to_release:
        _release(value)


# ---------------------------------------------------------------------------------------------
# driver


def _surviving_consumers(value: ir.Value, raised: set[int], seen: set[int]) -> list[tuple[str, str]]:
    """What will still read ``value`` after the raisable DQs are gone: (kind, kind and name) pairs."""
    found: list[tuple[str, str]] = []
    if value.is_graph_output():
        found.append(("a graph output", f"graph output {value.name!r}"))
    for node in value.consumers():
        if id(node) in raised:
            continue
        if _is_op(node, "Clip"):
            if id(node) in seen:
                continue
            seen.add(id(node))
            found.extend(_surviving_consumers(node.outputs[0], raised, seen))
            continue
        found.append((node.op_type, f"{node.op_type} {_label(node)!r}"))
    return found


def _needs_shapes(model: ir.Model, dqs: list[ir.Node]) -> bool:
    """Whether some per-axis/blocked activation quantizer lacks the rank of its tensor."""
    for dq in dqs:
        if _static_shape(dq.outputs[0]) is not None:
            continue
        scale = constant_array(_input(dq, 1))
        if scale is None or (scale.size == 1 and _int_attr(dq, "block_size", 0) == 0):
            continue
        current = dq.inputs[0]
        while current is not None and _is_op(current.producer(), "Clip"):
            current = current.producer().inputs[0]
        producer = current.producer() if current is not None else None
        if _is_op(producer, "QuantizeLinear") and _static_shape(producer.inputs[0]) is None:
            return True
    return False


def to_qonnx(model: ir.Model, *, allow_partial: bool = False) -> ConversionResult:
    """Raise QuantizeLinear/[Clip]/DequantizeLinear chains of ``model`` to QONNX, in place.

    Returns a ConversionResult (target "qonnx") listing what was left and why.
    Without ``allow_partial``, ConversionError is raised (and the model left as
    it was, apart from inferred shapes) when anything cannot be raised.
    """
    dqs: list[ir.Node] = []
    qs: list[ir.Node] = []
    dynamic: list[ir.Node] = []
    for graph in model.graphs():
        for node in graph:
            if _is_op(node, "DequantizeLinear"):
                dqs.append(node)
            elif _is_op(node, "QuantizeLinear"):
                qs.append(node)
            elif _is_op(node, "DynamicQuantizeLinear"):
                dynamic.append(node)

    notes: list[str] = []
    if dqs and _needs_shapes(model, dqs):
        from qonnx_tools.passes.infer_shapes import InferShapes

        InferShapes()(model)
        notes.append("shapes were inferred to lay out per-axis/blocked parameters of activations")

    analyser = _Analyser(model)
    plans: list[_Plan] = []
    unconverted: list[Unconverted] = []
    for dq in dqs:
        try:
            plans.append(analyser.analyse(dq))
        except Decline as declined:
            unconverted.append(Unconverted(_label(dq), dq.op_type, declined.reason, declined.detail(dq)))

    raised = {id(p.dq) for p in plans}
    for q in qs:
        left = _surviving_consumers(q.outputs[0], raised, set())
        if left:
            kinds = ", ".join(sorted({kind for kind, _ in left}))
            unconverted.append(Unconverted(
                _label(q), q.op_type,
                f"its integer output is read by {kinds}; only QuantizeLinear -> [Clip] -> DequantizeLinear chains "
                "have a QONNX form",
                ", ".join(where for _, where in left),
            ))
    for node in dynamic:
        notes.append(
            f"DynamicQuantizeLinear {_label(node)!r} kept: it computes scale and zero-point from the data at "
            "run time, which no QONNX op does"
        )

    result = ConversionResult(model, target="qonnx", unconverted=unconverted, notes=notes)
    if not allow_partial:
        result.raise_if_partial()

    names = _Names(model)
    for plan in plans:
        _apply(plan, names)

    if plans:
        if QONNX not in model.opset_imports:
            model.opset_imports[QONNX] = QONNX_OPSET_VERSION
        n_int = sum(p.op_type == "Quant" for p in plans)
        n_float = len(plans) - n_int
        notes.insert(0, f"raised {len(plans)} DequantizeLinear chain(s): {n_int} to Quant, {n_float} to FloatQuant")
        ties = [_label(p.dq) for p in plans if p.tie_fallback]
        if ties:
            notes.append(
                f"{len(ties)} float constant(s) behind QuantizeLinear with an odd zero-point hit exact rounding "
                "ties; their Quant reads the DequantizeLinear's values instead: " + ", ".join(ties)
            )
        asym = [_label(p.dq) for p in plans if p.nonzero_zp_activation]
        if asym:
            notes.append(
                f"{len(asym)} activation quantizer(s) have a non-zero zero-point: Quant adds it before rounding "
                "(as Brevitas does), QuantizeLinear after; they can differ by one step for inputs exactly halfway "
                "between steps (odd zero-points) or within float32 rounding of such a point"
            )
    return result
