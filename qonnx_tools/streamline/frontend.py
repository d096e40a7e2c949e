"""Front end: QONNX quantizers -> FINN form (integer weights, MultiThreshold activations).

Passes (each registered; ``qonnx-to-finn`` runs them all in order):

``fold-weight-quant``
    ``IntQuant``/``BipolarQuant`` of a constant (weights, biases). When the quantized
    tensor reaches the weight input of a ``MatMul`` (either operand: the constant one
    is found by looking) or a bias-free ``Conv`` -- possibly through Transpose /
    Reshape / Squeeze / Unsqueeze / Identity -- it becomes an *integer-valued*
    float32 initializer ``q - zero_point`` (annotated INTb / UINTb / BIPOLAR) and the
    scale becomes a ``Mul`` right after the MatMul/Conv: per tensor (scalar) or per
    output channel. ``fl32(q * s)`` is what the quantizer computes, so the split is
    exact up to the MatMul's own rounding. Everything else (biases, a scale that
    varies along the reduction axis, a non-integer zero-point, a Conv that still has
    its bias input) is folded to the dequantized float constant, and the reason is
    recorded. A quantized Conv/Gemm *bias* is therefore never split: run
    ``extract-conv-bias``/``gemm-to-matmul`` first (``qonnx-to-finn`` does) so the bias
    becomes a float ``Add`` *after* the weight-scale ``Mul``:
    ``Conv(x, W_int) -> Mul(s_w) -> Add(b)``; the Add stays float until it is absorbed.

``quant-to-multithreshold``
    Activation quantizers (non-constant input) -> ``MultiThreshold`` (+ ``Mul`` by the
    scale when it is not 1). IntQuant with constant scale > 0, zero-point 0 and a
    constant bit width <= ``max_bits``: ``hi - lo`` thresholds per channel, out_bias
    ``lo``; the thresholds are the exact float32 switching points of the quantizer
    (see ``thresholds``), whatever feeds it (Relu, identity, ...): a Relu in front is
    left for ``absorb-relu-into-multithreshold``. Per-tensor or per-channel scale
    (channel axis 1, or the last axis). BipolarQuant: one threshold at 0,
    out_scale 2, out_bias -1, then ``Mul`` by its scale. Refusals (non-zero
    zero-point, too many bits, run-time parameters, negative scale, unsupported
    granularity) are collected per node in ``declined``; nothing is raised.

``trunc-to-multithreshold``
    ``Trunc`` (version 2, which clamps) with constant parameters -> ``MultiThreshold``
    + ``Mul(out_scale)``: Trunc is a monotone step function of its input, so its
    switching points are thresholds (exact, computed with the Trunc kernel itself).
    Trunc version 1 does not clamp (unbounded levels): refused.

``avgpool-to-sumpool``
    ``AveragePool``/``GlobalAveragePool`` whose every consumer is a MultiThreshold ->
    depthwise ``Conv`` with all-ones integer weights (a sum pool) + ``Div`` by the
    window size; the ``Div`` is then absorbed exactly into the thresholds. This is the
    integer average-pool form of ``AveragePool -> Trunc``. Refused with
    ``count_include_pad=0`` and padding (the divisor varies), ``ceil_mode=1``, or an
    unknown channel count.

``qonnx-to-finn``
    cleanup, constant folding (static ``Shape`` included), Gemm -> MatMul, conv bias
    extraction, BatchNorm -> Mul/Add, Sub -> Add, Div -> Mul, then the passes above,
    ``sign-to-threshold``, the Relu in front of each new MultiThreshold absorbed
    (``absorb-relu-into-multithreshold``: a ReLU-fed unsigned quantizer becomes one
    MultiThreshold) and a final cleanup.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qonnx_tools._ir import ir
from qonnx_tools.annotations import set_datatype
from qonnx_tools.datatypes import BIPOLAR, DataType, smallest_int_type
from qonnx_tools.decline import Decline
from qonnx_tools.domains import QONNX, STANDARD, canonical_domain, opset_of
from qonnx_tools.executor.engine import bind_kernel
from qonnx_tools.ops._rounding import int_bounds
from qonnx_tools.passes.base import PassResult
from qonnx_tools.passes.pipeline import CompositePass, Pipeline
from qonnx_tools.streamline._graph import (
    DATA_MOVEMENT,
    Editor,
    RulePass,
    expand_to_rank,
    is_mt,
    is_op,
    rank,
    static_shape,
    varying_axes,
)
from qonnx_tools.streamline.thresholds import F32, level_guesses, out_datatype_name, step_thresholds

#: Node metadata key on each MultiThreshold made from an activation quantizer: the name of
#: that quantizer's output in the original model. The MultiThreshold outputs the
#: quantizer's integer level (output / scale) for as long as it lives (absorbing flips
#: the comparison but keeps the output), so ``layerwise`` can check it against the
#: original layer by layer. Saved with the model (NodeProto.metadata_props).
QUANTIZER_KEY = "qonnx_tools.quantizer"

# -- shared helpers -----------------------------------------------------------------------


def run_kernel(node: ir.Node, model: ir.Model, *arrays):
    """Run ``node``'s executor kernel on ``arrays`` (the node's attributes and opset)."""
    kernel, ctx = bind_kernel(node, model)
    return kernel(ctx, *arrays)


def layout_for(r: int | None, axis: int | None) -> str | None:
    """A MultiThreshold ``data_layout`` whose channel axis is ``axis`` for a rank-``r`` input.

    ``axis`` None means per-tensor thresholds (the layout does not matter): NCHW-style.
    Returns None when no layout puts the channels on ``axis`` (only axis 1 or the last axis).
    """
    if r is None:
        return "NCHW" if axis is None else None
    if r < 2:
        return "NC" if axis is None else None
    letters = "DHW" if r - 2 <= 3 else "ABDEFGIJKLMOPQRSTUVXYZ"
    spatial = letters[-(r - 2):] if r > 2 else ""
    if r - 2 > 3:
        spatial = letters[: r - 2]
    if axis is None or axis == 1:
        return "NC" + spatial
    if axis == r - 1:
        return "N" + spatial + "C"
    return None


def channel_params(
    arrays: dict[str, np.ndarray], r: int | None
) -> tuple[int | None, int, dict[str, np.ndarray]] | Decline:
    """Common channel axis of parameter arrays and each as an (R, 1) column.

    Returns (axis or None for per-tensor, R, columns) or why they have none.
    """
    axes: set[int] = set()
    full: dict[str, np.ndarray] = {}
    for key, a in arrays.items():
        a = np.asarray(a)
        if a.size == 1:
            full[key] = a.reshape(1)
            continue
        if r is None:
            return Decline(f"{key} is not per-tensor and the input rank is unknown (run infer-shapes)")
        e = expand_to_rank(a, r)
        if e is None:
            return Decline(f"{key} of shape {a.shape} has more dimensions than the input")
        vary = varying_axes(e)
        axes.update(vary)
        full[key] = e
    if len(axes) > 1:
        return Decline(f"parameters vary along several axes {sorted(axes)} (only per-tensor or per-channel)")
    if not axes:
        return None, 1, {k: v.reshape(1, 1) for k, v in full.items()}
    (axis,) = axes
    size = max(v.shape[axis] if v.ndim > axis else 1 for v in full.values())
    cols = {}
    for key, v in full.items():
        if v.size == 1:
            cols[key] = np.broadcast_to(v.reshape(1, 1), (size, 1))
        else:
            cols[key] = v.reshape(-1)[:, None] if v.shape[axis] == v.size else None
            if cols[key] is None:
                return Decline(f"{key} varies along more than the channel axis")
    return axis, size, cols


def _replace_single_output(editor: Editor, node: ir.Node, new_nodes: list[ir.Node], new_out: ir.Value) -> None:
    old = node.outputs[0]
    new_out.meta.update(old.meta)
    inputs = [v for v in node.inputs if v is not None]
    ir.convenience.replace_nodes_and_values(editor.graph, node, [node], new_nodes, [old], [new_out])
    editor.maybe_dead.extend(inputs)


def make_multithreshold(
    editor: Editor,
    x: ir.Value,
    thresholds: np.ndarray,
    *,
    out_scale: float,
    out_bias: float,
    layout: str,
    base: str,
    out_dtype: str | None = None,
) -> ir.Node:
    t_value = editor.initializer(np.asarray(thresholds, dtype=F32), f"{base}_thresholds")
    if out_dtype is None:
        out_dtype = out_datatype_name(out_scale, out_bias, int(thresholds.shape[1]))
    node = ir.node(
        "MultiThreshold",
        [x, t_value],
        attributes={
            "out_scale": float(out_scale),
            "out_bias": float(out_bias),
            "out_dtype": out_dtype,
            "data_layout": layout,
        },
        domain=QONNX,
        name=editor.fresh(f"{base}_mt"),
    )
    out = node.outputs[0]
    out.name = editor.fresh(f"{base}_int")
    out.type = ir.TensorType(ir.DataType.FLOAT)
    out.shape = x.shape
    return node


def _ensure_qonnx_opset(model: ir.Model) -> None:
    if not opset_of(model, QONNX):
        model.opset_imports[QONNX] = 1


# -- fold-weight-quant -------------------------------------------------------------------------


def _weight_codes(
    node: ir.Node, editor: Editor
) -> tuple[np.ndarray, np.ndarray, np.ndarray, DataType | None] | Decline:
    """(integer codes q - zp as float32, full-size float32 scale, dequantized y, datatype) or why not."""
    x = editor.const(node.inputs[0])
    params = [editor.const(v) for v in node.inputs[1:]]
    if any(p is None for p in params):
        return Decline("quantizer parameters are not constant")
    x = np.asarray(x).astype(F32)
    try:
        y = np.asarray(run_kernel(node, editor.model, x, *params))
    except Exception as exc:  # illegal parameters: the executor reports them on run
        return Decline(f"quantizer cannot be evaluated ({exc})")
    if is_op(node, "BipolarQuant", QONNX):
        codes = np.where(x >= 0, F32(1), F32(-1))
        scale = np.broadcast_to(np.asarray(params[0], dtype=F32), x.shape)
        dtype: DataType | None = BIPOLAR
    else:
        scale_arr, zp, bits = (np.asarray(p) for p in params[:3])
        scale = np.broadcast_to(scale_arr.astype(F32), x.shape)
        zp = np.broadcast_to(zp.astype(F32), x.shape)
        if not np.all(zp == np.round(zp)):
            return Decline("zero-point is not an integer (integer weights impossible)")
        with np.errstate(divide="ignore", invalid="ignore"):
            codes = np.rint((y / scale).astype(np.float64)).astype(F32)
        dtype = None
        if np.all(zp == 0) and np.unique(bits).size == 1:
            signed = bool(node.attributes.get_int("signed", 1))
            dtype = DataType.int(int(np.asarray(bits).reshape(-1)[0]), signed=signed)
    if not np.array_equal((codes * scale).astype(F32), y.astype(F32)):
        return Decline("codes times scale do not reproduce the quantizer output")
    if dtype is None and codes.size:
        try:
            dtype = smallest_int_type(float(codes.min()), float(codes.max()))
        except Exception:
            dtype = None
    return codes, np.ascontiguousarray(scale), y.astype(F32), dtype


_NOT_A_WEIGHT = "not a MatMul/Conv weight input"


def _weight_path(value: ir.Value, editor: Editor) -> list[tuple[list[ir.Node], ir.Node, int]]:
    """For each use of ``value``: (data-movement chain, final consumer, input index)."""
    paths = []
    for use in value.uses():
        chain: list[ir.Node] = []
        node, idx = use.node, use.idx
        while (
            canonical_domain(node.domain) == STANDARD
            and node.op_type in DATA_MOVEMENT
            and idx == 0
            and len(node.outputs) == 1
            and all(editor.const(v) is not None for v in node.inputs[1:] if v is not None)
            and len(node.outputs[0].uses()) == 1
            and not node.outputs[0].is_graph_output()
        ):
            chain.append(node)
            nxt = next(iter(node.outputs[0].uses()))
            node, idx = nxt.node, nxt.idx
        paths.append((chain, node, idx))
    return paths


def _through_chain(chain: list[ir.Node], array: np.ndarray, editor: Editor) -> np.ndarray:
    for node in chain:
        extra = [editor.const(v) if v is not None else None for v in node.inputs[1:]]
        array = np.asarray(run_kernel(node, editor.model, array, *extra))
    return array


def _output_scale(consumer: ir.Node, idx: int, scale: np.ndarray) -> np.ndarray | Decline:
    """The scale as a constant to multiply the consumer's output with, or why impossible."""
    if is_op(consumer, "MatMul"):
        if scale.ndim == 1:
            return scale[:1].reshape(()) if np.all(scale == scale[0]) else "1-D weight with a varying scale"
        if idx == 1:  # y = x @ W: W is (..., K, N); the scale must not vary along K
            if not np.all(scale == scale[..., :1, :]):
                return Decline("weight scale varies along the reduction axis (per-input-channel)")
            return scale[..., :1, :]
        if not np.all(scale == scale[..., :, :1]):  # y = W @ x: W is (..., M, K)
            return Decline("weight scale varies along the reduction axis (per-input-channel)")
        return scale[..., :, :1]
    if is_op(consumer, "Conv"):
        flat = scale.reshape(scale.shape[0], -1)
        if not np.all(flat == flat[:, :1]):
            return Decline("weight scale is not per output channel")
        return flat[:, 0].reshape((1, -1) + (1,) * (scale.ndim - 2))
    return Decline(f"not a weight input ({consumer.op_type})")


def _compact(c: np.ndarray) -> np.ndarray:
    c = np.asarray(c, dtype=F32)
    if c.size and np.all(c == c.reshape(-1)[0]):
        return c.reshape(-1)[:1].reshape(())
    return c


@dataclass
class FoldWeightQuant(RulePass, name="fold-weight-quant"):
    """IntQuant/BipolarQuant of constants: MatMul/Conv weights -> integer initializers + Mul(scale) after the
    MatMul/Conv (per tensor / per output channel); other constants (biases) -> dequantized floats"""

    def visit(self, node: ir.Node, editor: Editor):
        if not (is_op(node, "IntQuant", QONNX) or is_op(node, "BipolarQuant", QONNX)):
            return None
        if editor.const(node.inputs[0]) is None:
            return None  # an activation quantizer
        out = node.outputs[0]
        if out.is_graph_output():
            return Decline("quantized constant is a graph output")
        plan = _weight_codes(node, editor)
        if isinstance(plan, Decline):
            return self._fold_float(node, editor, plan)
        codes, scale, y, dtype = plan
        base = node.name or out.name or "weight"
        int_value: ir.Value | None = None
        float_value: ir.Value | None = None
        reasons: list[str] = []
        infos: list[str] = []
        revisit: list[ir.Node] = []
        for chain, consumer, idx in _weight_path(out, editor):
            why = self._slot_problem(consumer, idx, editor)
            s_out = None
            if why is None:
                moved = _through_chain(chain, scale, editor)
                s_out = _output_scale(consumer, idx, moved)
                if isinstance(s_out, Decline):
                    why, s_out = s_out, None
            first = chain[0] if chain else consumer
            first_idx = 0 if chain else idx
            if why is not None:
                line = f"use by {consumer.op_type} {consumer.name!r}: {why.reason}"
                (infos if why.reason.startswith(_NOT_A_WEIGHT) else reasons).append(line)
                if float_value is None:
                    float_value = editor.initializer(y, f"{out.name or base}_dequant")
                editor.set_input(first, first_idx, float_value)
                continue
            if int_value is None:
                int_value = editor.initializer(codes, f"{out.name or base}_int")
                if dtype is not None:
                    set_datatype(int_value, dtype)
            editor.set_input(first, first_idx, int_value)
            s_out = _compact(s_out)
            if not (s_out.size == 1 and float(s_out.reshape(-1)[0]) == 1.0):
                mul = editor.insert_after_value(consumer.outputs[0], "Mul", s_out, f"{consumer.name or base}_wscale")
                revisit.append(mul)
        editor.drop_if_dead(node)
        if reasons:
            self._refused.append((node, Decline("kept as float: " + "; ".join(reasons))))
        if infos:
            self._note(node, "dequantized to a float constant (" + "; ".join(infos) + ")")
        return revisit

    def _slot_problem(self, consumer: ir.Node, idx: int, editor: Editor) -> Decline | None:
        if is_op(consumer, "MatMul") and idx in (0, 1):
            other = consumer.inputs[1 - idx]
            if editor.const(other) is not None:
                return Decline("both MatMul operands are constant")
            return None
        if is_op(consumer, "Conv") and idx == 1:
            if len(consumer.inputs) > 2 and consumer.inputs[2] is not None:
                return Decline("Conv still has its bias input (run extract-conv-bias first)")
            return None
        if is_op(consumer, "Gemm"):
            return Decline("Gemm (run gemm-to-matmul first)")
        return Decline(f"{_NOT_A_WEIGHT} ({consumer.op_type} input {idx}, e.g. a bias)")

    def _fold_float(self, node: ir.Node, editor: Editor, why: Decline):
        """Replace the quantizer by its dequantized float constant; the refusal ``why`` is recorded."""
        out = node.outputs[0]
        x = editor.const(node.inputs[0])
        params = [editor.const(v) for v in node.inputs[1:]]
        if any(p is None for p in params):
            return why
        try:
            y = np.asarray(run_kernel(node, editor.model, np.asarray(x).astype(F32), *params)).astype(F32)
        except Exception:
            return why
        value = editor.initializer(y, f"{out.name or node.name}_dequant")
        editor.bypass(node, value)
        self._refused.append((node, Decline(f"folded to a float constant: {why.reason}", *why.where)))
        return []

    def _note(self, node: ir.Node, text: str) -> None:
        self.notes.append(f"node {node.name!r} ({node.op_type}): {text}")

    def call(self, model: ir.Model) -> PassResult:
        self.notes: list[str] = []  # informational: biases and other non-weight constants dequantized
        # Quantizers converted to float constants anyway (gone from the graph, so not RulePass's
        # pending declines): recorded after the run's other declines.
        self._refused: list[tuple[ir.Node, Decline]] = []
        result = super().call(model)
        for node, why in self._refused:
            self.decline(why, node)
        return result


# -- quant-to-multithreshold --------------------------------------------------------------------


def plan_activation_quant(node: ir.Node, editor: Editor, max_bits: int):
    """A builder for the MultiThreshold form of an activation quantizer, a ``Decline`` (why there is
    none), or None (a weight quantizer: not this converter's business). The builder returns the
    MultiThreshold parameters or a ``Decline``."""
    x = node.inputs[0]
    if x is None:
        return Decline("missing input")
    if editor.const(x) is not None:
        return None  # weights: fold-weight-quant
    params = node.inputs[1:]
    arrays = [editor.const(v) for v in params]
    if any(a is None for a in arrays):
        missing = [v.name for v, a in zip(params, arrays) if a is None]
        return Decline(f"non-constant parameters {missing} (computed at run time)")
    r = rank(x)
    if is_op(node, "BipolarQuant", QONNX):
        scale = np.asarray(arrays[0], dtype=F32)

        def build_bipolar():
            thresholds = np.zeros((1, 1), dtype=F32)
            return thresholds, 2.0, -1.0, layout_for(r, None) or "NCHW", scale, "BIPOLAR"

        return build_bipolar
    scale, zp, bits = (np.asarray(a) for a in arrays[:3])
    if np.any(zp != 0):
        return Decline("non-zero zero-point (asymmetric quantization has no threshold form here)")
    if np.unique(bits).size != 1:
        return Decline("bit width varies per channel")
    nbits = int(np.asarray(bits).reshape(-1)[0])
    if nbits > max_bits:
        return Decline(f"{nbits}-bit activation exceeds max_bits={max_bits} ({2 ** nbits - 1} thresholds per channel)")
    scale = scale.astype(F32)
    if not np.all(np.isfinite(scale)) or np.any(scale <= 0):
        return Decline("scale is not positive and finite")
    channels = channel_params({"scale": scale}, r)
    if isinstance(channels, Decline):
        return channels
    axis, rows, cols = channels
    layout = layout_for(r, axis)
    if layout is None:
        return Decline(f"per-channel scale on axis {axis} of a rank-{r} tensor (channel axis must be 1 or last)")
    signed, narrow = bool(node.attributes.get_int("signed", 1)), bool(node.attributes.get_int("narrow", 0))
    lo, hi = (float(v) for v in int_bounds(signed, narrow, nbits))
    if hi <= lo:
        return Decline(f"degenerate integer range [{lo:g}, {hi:g}]")

    def build_int():
        levels_int = np.arange(lo + 1, hi + 1, dtype=np.float64)[None, :]
        s_col = cols["scale"].astype(F32)
        levels = (levels_int.astype(F32) * s_col).astype(F32)
        if levels.shape[1] > 1 and np.any(np.diff(levels, axis=1) <= 0):
            return Decline("scale too small: quantizer levels collide in float32")
        zero, nb = np.zeros((), dtype=F32), np.asarray(bits).reshape(-1)[:1].reshape(())

        def f(t):
            return run_kernel(node, editor.model, t, s_col, zero, nb)

        thresholds = step_thresholds(
            f, np.broadcast_to(levels, (rows, levels.shape[1])), level_guesses(levels_int, s_col)
        )
        dtype = str(DataType.int(nbits, signed=signed))
        return thresholds, 1.0, lo, layout, scale, dtype

    return build_int


def _materialise(node: ir.Node, editor: Editor, plan) -> list[ir.Node] | Decline | None:
    """Carry out a converter's plan (``plan_activation_quant`` / ``plan_trunc``): the quantizer
    becomes MultiThreshold (+ Mul by its scale). A ``Decline`` or "not mine" (None) passes through."""
    if plan is None or isinstance(plan, Decline):
        return plan
    built = plan()
    if isinstance(built, Decline):
        return built
    thresholds, out_scale, out_bias, layout, scale, dtype = built
    base = node.name or node.outputs[0].name or "act"
    x = node.inputs[0]
    mt = make_multithreshold(
        editor, x, thresholds, out_scale=out_scale, out_bias=out_bias, layout=layout, base=base, out_dtype=dtype
    )
    mt.metadata_props[QUANTIZER_KEY] = node.outputs[0].name
    new_nodes = [mt]
    final = mt.outputs[0]
    if not np.all(scale == 1):
        s_value = editor.initializer(_compact(scale) if scale.size == 1 else scale.astype(F32), f"{base}_scale")
        mul = ir.node("Mul", [final, s_value], name=editor.fresh(f"{base}_scale"))
        mul.outputs[0].type = ir.TensorType(ir.DataType.FLOAT)
        new_nodes.append(mul)
        final = mul.outputs[0]
    _replace_single_output(editor, node, new_nodes, final)
    _ensure_qonnx_opset(editor.model)
    return new_nodes


@dataclass
class QuantToMultiThreshold(RulePass, name="quant-to-multithreshold"):
    """activation IntQuant (zero-point 0, constant params, <= max_bits) / BipolarQuant -> MultiThreshold with
    exact thresholds (ties per rounding mode) + Mul(scale); refusals collected per node"""

    max_bits: int = 8

    def visit(self, node: ir.Node, editor: Editor):
        if not (is_op(node, "IntQuant", QONNX) or is_op(node, "BipolarQuant", QONNX)):
            return None
        return _materialise(node, editor, plan_activation_quant(node, editor, self.max_bits))


# -- trunc-to-multithreshold -----------------------------------------------------------------------


def plan_trunc(node: ir.Node, editor: Editor, max_bits: int):
    """A builder for the MultiThreshold form of a Trunc, or a ``Decline`` (why there is none)."""
    if len(node.inputs) < 6:
        return Decline("Trunc version 1 does not clamp its output (unbounded levels); only Trunc v2 is converted")
    x = node.inputs[0]
    arrays = [editor.const(v) for v in node.inputs[1:6]]
    if any(a is None for a in arrays):
        return Decline("non-constant parameters (computed at run time)")
    scale, zp, in_bits, out_scale, out_bits = (np.asarray(a) for a in arrays)
    if np.any(zp != 0):
        return Decline("non-zero zero-point")
    if np.unique(out_bits).size != 1 or np.unique(in_bits).size != 1:
        return Decline("bit widths vary per channel")
    nbits = int(out_bits.reshape(-1)[0])
    if nbits > max_bits:
        return Decline(f"{nbits}-bit output exceeds max_bits={max_bits}")
    if np.any(scale <= 0) or np.any(out_scale <= 0):
        return Decline("scales are not positive")
    r = rank(x)
    channels = channel_params({"scale": scale.astype(F32), "out_scale": out_scale.astype(F32)}, r)
    if isinstance(channels, Decline):
        return channels
    axis, rows, cols = channels
    layout = layout_for(r, axis)
    if layout is None:
        return Decline(f"per-channel parameters on axis {axis} (channel axis must be 1 or last)")
    signed, narrow = bool(node.attributes.get_int("signed", 1)), bool(node.attributes.get_int("narrow", 0))
    lo, hi = (float(v) for v in int_bounds(signed, narrow, nbits))

    def build():
        levels_int = np.arange(lo + 1, hi + 1, dtype=F32)[None, :]
        levels = (levels_int * cols["out_scale"].astype(F32)).astype(F32)
        if levels.shape[1] > 1 and np.any(np.diff(levels, axis=1) <= 0):
            return Decline("output scale too small: levels collide in float32")
        zero = np.zeros((), dtype=F32)

        def f(t):
            return run_kernel(
                node, editor.model, t, cols["scale"].astype(F32), zero, in_bits.reshape(-1)[:1].reshape(()),
                cols["out_scale"].astype(F32), out_bits.reshape(-1)[:1].reshape(()),
            )

        guesses = level_guesses(levels_int, cols["out_scale"])
        thresholds = step_thresholds(f, np.broadcast_to(levels, (rows, levels.shape[1])), guesses)
        return thresholds, 1.0, lo, layout, out_scale.astype(F32), str(DataType.int(nbits, signed=signed))

    return build


@dataclass
class TruncToMultiThreshold(RulePass, name="trunc-to-multithreshold"):
    """Trunc v2 (constant params, zero-point 0) -> MultiThreshold + Mul(out_scale); v1 refused"""

    max_bits: int = 8

    def visit(self, node: ir.Node, editor: Editor):
        if not is_op(node, "Trunc", QONNX):
            return None
        return _materialise(node, editor, plan_trunc(node, editor, self.max_bits))


# -- avgpool-to-sumpool -------------------------------------------------------------------------------


@dataclass
class AvgPoolToSumPool(RulePass, name="avgpool-to-sumpool"):
    """AveragePool/GlobalAveragePool whose consumers are MultiThresholds -> depthwise all-ones Conv + Div(K)
    (integer average pool; the Div is absorbed into the thresholds)"""

    def visit(self, node: ir.Node, editor: Editor):
        glob = is_op(node, "GlobalAveragePool")
        if not (is_op(node, "AveragePool") or glob):
            return None
        out = node.outputs[0]
        uses = out.uses()
        if not uses or out.is_graph_output() or not all(is_mt(u.node) and u.idx == 0 for u in uses):
            return Decline("output is not only thresholded (no integer form needed)")
        x = node.inputs[0]
        shape = static_shape(x) if glob else None
        r = rank(x)
        if r is None or r < 3 or x.shape is None or not isinstance(x.shape[1], int):
            return Decline("channel count unknown (run infer-shapes)")
        channels = int(x.shape[1])
        if glob:
            if shape is None:
                return Decline("spatial size unknown")
            kernel = list(shape[2:])
            attrs: dict = {"kernel_shape": kernel, "group": channels}
        else:
            kernel = list(node.attributes.get_ints("kernel_shape", ()))
            pads = node.attributes.get_ints("pads", ())
            auto_pad = node.attributes.get_string("auto_pad", "NOTSET")
            padded = any(pads) or auto_pad not in ("NOTSET", "VALID")
            if padded and not node.attributes.get_int("count_include_pad", 0):
                return Decline("count_include_pad=0 with padding: the divisor varies at the borders")
            if node.attributes.get_int("ceil_mode", 0):
                return Decline("ceil_mode=1 (partial windows)")
            attrs = {"kernel_shape": kernel, "group": channels}
            for key in ("strides", "pads", "dilations"):
                value = node.attributes.get_ints(key)
                if value is not None:
                    attrs[key] = list(value)
            if auto_pad != "NOTSET":
                attrs["auto_pad"] = auto_pad
        window = int(np.prod(kernel)) if kernel else 1
        base = node.name or out.name or "avgpool"
        ones = editor.initializer(np.ones([channels, 1] + kernel, dtype=F32), f"{base}_ones")
        set_datatype(ones, smallest_int_type(1.0, 1.0))
        conv = ir.node("Conv", [x, ones], attributes=attrs, name=editor.fresh(f"{base}_sum"))
        conv.outputs[0].name = editor.fresh(f"{base}_sum")
        conv.outputs[0].type = ir.TensorType(ir.DataType.FLOAT)
        conv.outputs[0].shape = out.shape
        k_value = editor.initializer(np.array(window, dtype=F32), f"{base}_window")
        div = ir.node("Div", [conv.outputs[0], k_value], name=editor.fresh(f"{base}_div"))
        div.outputs[0].type = ir.TensorType(ir.DataType.FLOAT)
        _replace_single_output(editor, node, [conv, div], div.outputs[0])
        return [conv, div] + [u.node for u in div.outputs[0].uses()]


# -- the whole front end ----------------------------------------------------------------------------


def frontend_pipeline_text(max_bits: int = 8) -> str:
    return (
        "cleanup, fold-constants, gemm-to-matmul, extract-conv-bias, batchnorm-to-affine, "
        "sub-to-add, div-to-mul, fold-weight-quant, fold-constants, "
        f"quant-to-multithreshold{{max_bits={max_bits}}}, trunc-to-multithreshold{{max_bits={max_bits}}}, "
        "avgpool-to-sumpool, sign-to-threshold, absorb-relu-into-multithreshold, cleanup"
    )


@dataclass
class QonnxToFinn(CompositePass, name="qonnx-to-finn"):
    """QONNX -> FINN form: cleanup, Gemm->MatMul, conv bias -> Add, BN -> Mul/Add, integer weights + scale Mul,
    activation quantizers/Trunc -> MultiThreshold, AveragePool -> sum pool"""

    max_bits: int = 8

    def __post_init__(self) -> None:
        super().__post_init__()  # declined: quantizers (and pools) that could not be converted, with the reason
        self.notes: list[str] = []  # informational (e.g. quantized biases dequantized to float constants)

    def pipeline_text(self) -> str:
        return frontend_pipeline_text(self.max_bits)

    def collect(self, pipeline: Pipeline) -> None:
        converters = [p for p in pipeline.passes if getattr(p, "name", "") in _CONVERTERS]
        self.declined.extend(collect_declined(converters))
        self.notes = [line for p in converters for line in getattr(p, "notes", ())]


#: The front-end passes whose refusals are reported (the canonicalising passes' declines are noise here).
_CONVERTERS = ("fold-weight-quant", "quant-to-multithreshold", "trunc-to-multithreshold", "avgpool-to-sumpool")


def collect_declined(items) -> list[str]:
    """The ``declined`` lines of every pass in a pipeline item list (fixpoint groups included), deduplicated."""
    from qonnx_tools.passes.pipeline import Fixpoint

    seen: dict[str, None] = {}
    for item in items:
        if isinstance(item, Fixpoint):
            for line in collect_declined(item.passes):
                seen.setdefault(line, None)
            continue
        for line in getattr(item, "declined", None) or ():
            seen.setdefault(line, None)
    return list(seen)
