"""Absorbing float arithmetic into MultiThreshold thresholds and sign flips into integer weights.

``absorb-into-multithreshold`` (and its single-kind variants ``absorb-add-into-multithreshold``,
``absorb-mul-into-multithreshold``, ``absorb-relu-into-multithreshold``)
    ``MultiThreshold(Op(x, c))`` -> ``MultiThreshold(x)`` with new thresholds, for Op in
    Add/Sub (constant right operand), Mul/Div by a constant, and Relu. The thresholds
    are recomputed *exactly* for float32 (smallest x with ``fl32(x op c) >= t``, see
    ``thresholds``), one op at a time starting next to the MultiThreshold, so the
    rewrite does not change a single output bit. ``c`` may be a scalar or vary along
    one axis: the MultiThreshold's channel axis (per-channel thresholds), or any axis
    that a data layout can name when the thresholds are still shared (the layout is
    then set to it). A factor <= 0 everywhere flips the comparison: ``out_scale`` is
    negated and ``out_bias`` adjusted (``count = T - count'``). A factor with both signs
    is refused here; ``factor-out-mul-sign`` splits off its sign, which
    ``absorb-sign-mul-into-linear`` pushes into integer weights. Zero or tiny factors
    (pruned channels) give thresholds of ``+-inf``. When ``Op``'s output has other
    consumers the node stays for them (fan-out safe).

``absorb-sign-mul-into-linear``
    A ``Mul`` by a constant of -1/0/+1 values (1-bit / bipolar) is absorbed into the
    integer weights of a MatMul/Conv: upwards (the MatMul/Conv that produces it, through
    a single-consumer chain of Mul/Add by constants; Add constants are multiplied by the
    sign too) when the sign varies along that op's output-channel axis, else downwards
    (the MatMul/Conv it feeds, sign along the reduction / input-channel axis). Exact;
    integer weights stay integer.

``round-thresholds``
    For a MultiThreshold whose input has an integer datatype (recomputed first with
    infer-datatypes, so annotations are never stale): ``x >= t`` iff ``x >= ceil(t)``;
    thresholds are rounded up and clipped to ``[min, max + 1]`` of the input type.

``sign-to-threshold``
    ``Sign(x)`` -> ``MultiThreshold(x, [0, smallest positive float32], out_bias=-1)``:
    -1 / 0 / +1 exactly like Sign (zero stays 0).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from qonnx_tools._ir import ir
from qonnx_tools.annotations import get_datatype
from qonnx_tools.decline import Decline
from qonnx_tools.ops.multithreshold import channel_axis
from qonnx_tools.passes.base import PassResult
from qonnx_tools.streamline._graph import (
    Editor,
    RulePass,
    fits,
    float_attr,
    is_mt,
    is_op,
    rank,
    set_attr,
    single_axis_vector,
)
from qonnx_tools.streamline.frontend import _ensure_qonnx_opset, _replace_single_output, layout_for, make_multithreshold
from qonnx_tools.streamline.thresholds import (
    F32,
    absorb,
    absorb_relu,
    out_datatype_name,
    round_to_integer_input,
)

F64 = np.float64

# -- absorbing into MultiThreshold ----------------------------------------------------------------


def _thresholds(mt: ir.Node, editor: Editor) -> np.ndarray | None:
    t = editor.const(mt.inputs[1]) if len(mt.inputs) > 1 else None
    if t is None:
        return None
    t = np.asarray(t, dtype=F32)
    return t.reshape(1, -1) if t.ndim == 1 else t


def plan_absorb(mt: ir.Node, editor: Editor, kinds: tuple[str, ...]):
    """How to absorb the op producing ``mt``'s input: (producer, new input, thresholds, scale, bias, layout);
    a ``Decline`` when it cannot be absorbed, None when there is nothing of ``kinds`` to absorb."""
    x = mt.inputs[0]
    producer = x.producer() if x is not None else None
    if producer is None:
        return None
    t = _thresholds(mt, editor)
    if t is None:
        return Decline("thresholds are not constant")
    out_scale, out_bias = float_attr(mt, "out_scale", 1.0), float_attr(mt, "out_bias", 0.0)
    layout = mt.attributes.get_string("data_layout", "NCHW").upper()
    if is_op(producer, "Relu"):
        if "Relu" not in kinds:
            return None
        return producer, producer.inputs[0], absorb_relu(t), out_scale, out_bias, layout
    found = editor.scaled(x, tuple(k for k in kinds if k != "Relu"))
    if found is None:
        return None
    node, y, c = found
    r = rank(x)
    if not fits(c, y):
        return Decline(f"{node.op_type} constant broadcasts the tensor to a larger shape", node)
    rows = t.shape[0]
    found = single_axis_vector(c, r, f"{node.op_type} constant")
    if isinstance(found, Decline):
        return found
    vec, axis = found
    if axis is not None:
        if rows > 1:
            try:
                mt_axis = channel_axis(layout, r)
            except ValueError:
                return Decline(f"data_layout {layout} does not fit a rank-{r} input")
            if mt_axis != axis:
                return Decline(
                    f"{node.op_type} constant varies along axis {axis}, thresholds along axis {mt_axis}", node
                )
            if vec.size != rows:
                return Decline("constant and thresholds disagree on the channel count", node)
        else:
            new_layout = layout_for(r, axis)
            if new_layout is None:
                return Decline(
                    f"{node.op_type} constant varies along axis {axis} (no data layout has channels there)", node
                )
            layout = new_layout
            t = np.broadcast_to(t, (vec.size, t.shape[1]))
    col = vec.reshape(-1, 1)
    result = absorb(t, node.op_type, col.astype(F32) if col.dtype != F64 else col)
    if isinstance(result, Decline):
        return Decline(f"{node.op_type} {node.name!r}: {result.reason}", node)
    new_t, flipped = result
    if flipped:
        out_bias = out_bias + out_scale * t.shape[1]
        out_scale = -out_scale
    return node, y, new_t, out_scale, out_bias, layout


def apply_absorb(mt: ir.Node, editor: Editor, plan) -> None:
    node, y, new_t, out_scale, out_bias, layout = plan
    base = mt.name or "mt"
    editor.set_input(mt, 1, editor.initializer(np.ascontiguousarray(new_t, dtype=F32), f"{base}_thresholds"))
    editor.set_input(mt, 0, y)
    set_attr(mt, "out_scale", float(out_scale))
    set_attr(mt, "out_bias", float(out_bias))
    set_attr(mt, "data_layout", layout)
    set_attr(mt, "out_dtype", out_datatype_name(out_scale, out_bias, int(new_t.shape[1])))
    editor.drop_if_dead(node)


class _AbsorbPass(RulePass):
    kinds: ClassVar[tuple[str, ...]] = ("Relu", "Add", "Sub", "Mul", "Div")

    def visit(self, mt: ir.Node, editor: Editor):
        if not is_mt(mt):
            return None
        changed = False
        reason = None
        for _ in range(1000):  # each step removes one op in front of the MultiThreshold
            plan = plan_absorb(mt, editor, self.kinds)
            if plan is None:
                break
            if isinstance(plan, Decline):
                reason = plan
                break
            apply_absorb(mt, editor, plan)
            changed = True
        if changed:
            return []
        return reason


@dataclass
class AbsorbIntoMultiThreshold(_AbsorbPass, name="absorb-into-multithreshold"):
    """MultiThreshold(op(x, c)) -> MultiThreshold(x) with exact float32 thresholds, for Add/Sub/Mul/Div by
    constants (scalar / per-channel; negative factors flip the comparison) and Relu; fan-out safe"""
    kinds: ClassVar[tuple[str, ...]] = ("Relu", "Add", "Sub", "Mul", "Div")


@dataclass
class AbsorbAddIntoMultiThreshold(_AbsorbPass, name="absorb-add-into-multithreshold"):
    """MultiThreshold(x + b) -> MultiThreshold(x) with thresholds t' = min{x : fl(x + b) >= t}"""
    kinds: ClassVar[tuple[str, ...]] = ("Add", "Sub")


@dataclass
class AbsorbMulIntoMultiThreshold(_AbsorbPass, name="absorb-mul-into-multithreshold"):
    """MultiThreshold(x * a) -> MultiThreshold(x), t' = min{x : fl(x * a) >= t}; a <= 0 flips the comparison
    (out_scale negated); mixed signs refused"""
    kinds: ClassVar[tuple[str, ...]] = ("Mul", "Div")


@dataclass
class AbsorbReluIntoMultiThreshold(_AbsorbPass, name="absorb-relu-into-multithreshold"):
    """MultiThreshold(relu(x)) -> MultiThreshold(x) (thresholds <= 0 are always reached)"""
    kinds: ClassVar[tuple[str, ...]] = ("Relu",)


# -- sign (1-bit) Mul into integer weights -----------------------------------------------------------


def is_sign_constant(c: np.ndarray) -> bool:
    """Values in {-1, 0, +1} and not all +1."""
    return c.size > 0 and c.dtype.kind == "f" and bool(np.all(np.isin(c, (-1.0, 0.0, 1.0)))) and not bool(np.all(c == 1))


def _linear_weight(node: ir.Node, editor: Editor) -> tuple[int, np.ndarray] | None:
    """(index of the constant weight input, weights) of a MatMul/Conv whose other operand is dynamic."""
    if is_op(node, "Conv"):
        w = editor.const(node.inputs[1])
        if w is None or editor.const(node.inputs[0]) is not None:
            return None
        return 1, w
    if is_op(node, "MatMul"):
        a, b = editor.const(node.inputs[0]), editor.const(node.inputs[1])
        if b is not None and a is None:
            return 1, b
        if a is not None and b is None:
            return 0, a
    return None


def _scaled_weight(w: np.ndarray, sign: np.ndarray, axis: int) -> np.ndarray:
    shape = [1] * w.ndim
    shape[axis] = sign.size
    return (w * sign.reshape(shape).astype(w.dtype) + 0).astype(w.dtype)  # + 0: no negative zeros


def _set_signed_weight(editor: Editor, linear: ir.Node, w_idx: int, new_w: np.ndarray, sign: np.ndarray) -> None:
    """Give ``linear`` the sign-multiplied weights ``new_w``; the old datatype annotation is kept
    only when no sign is 0 (a -1/+1 flip keeps a symmetric integer range, a 0 may not)."""
    keep_type = bool(np.all(sign != 0))
    base = linear.name or "linear"
    w_value = editor.initializer(new_w, f"{base}_w_sign", like=linear.inputs[w_idx] if keep_type else None)
    editor.set_input(linear, w_idx, w_value)


def plan_sign_upward(editor: Editor, x: ir.Value, c: np.ndarray):
    """Apply-callable pushing ``Mul(x, c)`` (c in {-1,0,1}) into the MatMul/Conv producing x, or a ``Decline``."""
    r = rank(x)
    chain: list[ir.Node] = []
    v = x
    while True:
        producer = v.producer()
        if producer is None:
            return Decline("no MatMul/Conv above (graph input)", v)
        if len(v.uses()) != 1 or v.is_graph_output():
            return Decline(f"{producer.op_type} {producer.name!r} output has other consumers", producer)
        if is_op(producer, "MatMul") or is_op(producer, "Conv"):
            break
        found = editor.scaled(v, ("Mul", "Add"))
        if found is None:
            return Decline(f"{producer.op_type} {producer.name!r} between the sign and the weights", producer)
        chain.append(found[0])
        v = found[1]
    linear = producer
    weight = _linear_weight(linear, editor)
    if weight is None:
        return Decline(f"{linear.op_type} {linear.name!r} has no constant weight operand", linear)
    w_idx, w = weight
    found = single_axis_vector(c, r, "sign")
    if isinstance(found, Decline):
        return found
    sign_vec, out_axis_x = found
    if is_op(linear, "Conv"):
        w_axis = 0
        if out_axis_x is not None and out_axis_x != 1:
            return Decline("sign does not vary along the Conv output channels", linear)
        if len(linear.inputs) > 2 and linear.inputs[2] is not None and editor.const(linear.inputs[2]) is None:
            return Decline("Conv bias is not constant", linear)
    elif w_idx == 1:  # x @ W: output channels on the last axis
        w_axis = w.ndim - 1
        if out_axis_x is not None and out_axis_x != r - 1:
            return Decline("sign does not vary along the MatMul output columns", linear)
    else:  # W @ x: output rows (axis -2)
        w_axis = w.ndim - 2 if w.ndim >= 2 else None
        if w_axis is None or out_axis_x is not None and out_axis_x != r - 2:
            return Decline("sign does not vary along the MatMul output rows", linear)
    n_out = w.shape[w_axis]
    if sign_vec.size not in (1, n_out):
        return Decline("sign length does not match the output channels", linear)
    sign_full = np.broadcast_to(sign_vec, (n_out,)).astype(F32)

    def apply(mul: ir.Node) -> None:
        base = linear.name or "linear"
        _set_signed_weight(editor, linear, w_idx, _scaled_weight(w, sign_full, w_axis), sign_full)
        if is_op(linear, "Conv") and len(linear.inputs) > 2 and linear.inputs[2] is not None:
            bias = editor.const(linear.inputs[2])
            editor.set_input(linear, 2, editor.initializer((bias * sign_full).astype(bias.dtype), f"{base}_b_sign"))
        for node in chain:
            if node.op_type != "Add":
                continue
            dyn, b, b_idx = editor.split_const(node)
            b_new = (b.astype(F64) * c.astype(F64)).astype(F32)
            editor.set_input(node, b_idx, editor.initializer(b_new, f"{node.name or 'add'}_sign"))
        editor.bypass(mul, x)

    return apply


def plan_sign_downward(editor: Editor, x: ir.Value, c: np.ndarray, consumer: ir.Node, idx: int):
    """Apply-callable folding ``Mul(x, c)`` into the weights of the MatMul/Conv ``consumer``, or a ``Decline``."""
    weight = _linear_weight(consumer, editor)
    if weight is None:
        return Decline(f"{consumer.op_type} {consumer.name!r} is not a MatMul/Conv with constant weights", consumer)
    w_idx, w = weight
    if w_idx == idx:
        return Decline("the sign multiplies the weights themselves", consumer)
    r = rank(x)
    found = single_axis_vector(c, r, "sign")
    if isinstance(found, Decline):
        return found
    sign_vec, axis_x = found
    if is_op(consumer, "Conv"):
        if axis_x is not None and axis_x != 1:
            return Decline("sign does not vary along the Conv input channels", consumer)
        group = consumer.attributes.get_int("group", 1)
        cout, cin_g = w.shape[0], w.shape[1]
        cin = cin_g * group
        if sign_vec.size not in (1, cin):
            return Decline("sign length does not match the input channels", consumer)
        vec = np.broadcast_to(sign_vec, (cin,))
        index = (np.arange(cout) // max(cout // group, 1))[:, None] * cin_g + np.arange(cin_g)[None, :]
        factor = vec[index].reshape((cout, cin_g) + (1,) * (w.ndim - 2))
    elif idx == 0:  # x @ W: x's last axis is the reduction axis = W's axis -2
        if axis_x is not None and axis_x != r - 1 or w.ndim < 2:
            return Decline("sign does not vary along the reduction axis", consumer)
        k = w.shape[-2]
        factor = np.broadcast_to(sign_vec, (k,)).reshape((k, 1))
    else:  # W @ x: x's axis -2 is the reduction axis = W's last axis
        if axis_x is not None and (r is None or axis_x != r - 2):
            return Decline("sign does not vary along the reduction axis", consumer)
        k = w.shape[-1]
        factor = np.broadcast_to(sign_vec, (k,)).reshape((k,))

    def apply(mul: ir.Node) -> None:
        new_w = (w * factor.astype(w.dtype) + 0).astype(w.dtype)
        _set_signed_weight(editor, consumer, w_idx, new_w, factor)
        editor.set_input(consumer, idx, x)

    return apply


@dataclass
class AbsorbSignMulIntoLinear(RulePass, name="absorb-sign-mul-into-linear"):
    """Mul by a {-1,0,+1} (bipolar/1-bit) constant -> absorbed into the integer weights of the MatMul/Conv
    above (output channels) or below (input channels); exact"""

    def visit(self, node: ir.Node, editor: Editor):
        split = editor.const_operand(node, ("Mul",))
        if split is None:
            return None
        x, c, _ = split
        if not is_sign_constant(c) or not fits(c, x):
            return None
        up = plan_sign_upward(editor, x, c)
        if not isinstance(up, Decline):
            producer = x.producer()
            up(node)
            return [producer] if producer is not None else []
        reasons = [f"up: {up.reason}"]
        done = False
        for use in node.outputs[0].uses():
            down = plan_sign_downward(editor, x, c, use.node, use.idx)
            if isinstance(down, Decline):
                reasons.append(f"down: {down.reason}")
                continue
            down(node)
            done = True
        if done:
            editor.drop_if_dead(node)
            return []
        return Decline("; ".join(reasons))


# -- round-thresholds ----------------------------------------------------------------------------------


@dataclass
class RoundThresholds(RulePass, name="round-thresholds"):
    """MultiThreshold on an integer-typed input (datatypes re-inferred first): thresholds -> ceil(t) clipped to
    [min, max + 1] (exact for integer inputs)"""

    def call(self, model: ir.Model) -> PassResult:
        from qonnx_tools.passes.infer_datatypes import InferDatatypes

        InferDatatypes()(model)  # never work from stale annotations
        return super().call(model)

    def visit(self, mt: ir.Node, editor: Editor):
        if not is_mt(mt):
            return None
        dt = get_datatype(mt.inputs[0])
        if dt is None or not dt.is_integer:
            return Decline("input is not integer-typed", mt.inputs[0])
        t = _thresholds(mt, editor)
        if t is None:
            return Decline("thresholds are not constant")
        lo, hi = float(dt.min), float(dt.max)
        if not (np.isfinite(lo) and np.isfinite(hi)) or max(abs(lo), abs(hi)) > 2.0**24:
            return Decline(f"input range {dt} too wide for exact float32 integer thresholds", mt.inputs[0])
        new = round_to_integer_input(t, lo, hi)
        old_shape_t = editor.const(mt.inputs[1])
        if new.shape == np.shape(old_shape_t) and np.array_equal(new, old_shape_t):
            return None
        editor.set_input(mt, 1, editor.initializer(new, f"{mt.name or 'mt'}_thresholds_int"))
        return []


# -- sign-to-threshold -------------------------------------------------------------------------------


@dataclass
class SignToThreshold(RulePass, name="sign-to-threshold"):
    """Sign(x) -> MultiThreshold(x, [0, smallest subnormal], out_bias=-1): -1/0/+1 exactly"""

    def visit(self, node: ir.Node, editor: Editor):
        if not is_op(node, "Sign"):
            return None
        x = node.inputs[0]
        if x.dtype is not None and x.dtype != ir.DataType.FLOAT:
            return Decline(f"input is {x.dtype.name}, not float32", x)
        tiny = np.nextafter(F32(0), F32(1))
        thresholds = np.array([[0.0, tiny]], dtype=F32)
        r = rank(x)
        mt = make_multithreshold(
            editor, x, thresholds, out_scale=1.0, out_bias=-1.0, layout=layout_for(r, None) or "NCHW",
            base=node.name or "sign",
        )
        _replace_single_output(editor, node, [mt], mt.outputs[0])
        _ensure_qonnx_opset(editor.model)
        return [mt]
