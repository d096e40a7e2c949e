"""Moving scalar / per-channel ``Mul`` and ``Add`` (by a constant) towards the outputs.

Each pass takes ``Op(x, c)`` -- the constant operand is found by looking, either
side -- and, for each consumer ``P`` it can pass, rewires ``P`` to read ``x`` and
inserts ``Op(P(x), c')`` after ``P``. When ``Op``'s output has other consumers the
node stays for them (it is in effect duplicated per consumer), so residual
branches never see a changed value. The moved node is visited again, so a scale
travels as far as it can in one run.

``move-mul-past-linear``
    Mul past MatMul (factor constant along the reduction axis: scalar, or per row of
    the left / per column of the right operand), Conv without bias (scalar; per
    channel only for depthwise convs, where output channel o reads input channel
    ``o // multiplier``), AveragePool / GlobalAveragePool (scalar or per channel),
    Relu (positive factors only).
``move-add-past-linear``
    Add past MatMul with a constant other operand (``(x + b) W = x W + b W``, b constant
    along the rows), Conv without padding and without bias (per channel or scalar:
    ``Conv(x + b) = Conv(x) + sum_k W b``), AveragePool without padding (or
    ``count_include_pad=0``) and GlobalAveragePool.
``move-past-maxpool``
    Mul by positive factors (scalar / per channel) and Add (scalar / per channel) past
    MaxPool / GlobalMaxPool (``max(a x + b) = a max(x) + b`` for a > 0 only).
``move-past-reshape``
    Mul / Add past Transpose (the constant is transposed), Reshape, Flatten, Squeeze,
    Unsqueeze (scalars always; a per-channel constant when the static shapes keep it a
    single-axis constant and keep the batch axis).
``move-add-past-mul``
    ``(x + b) * a -> x * a + b * a``: Adds move after Muls, so scales meet and chains
    end as ``Mul -> Add``.

These rewrites reassociate float arithmetic: results agree to a few ulps, and are
bit-exact when the factor is a power of two (or the values are small integers).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, ClassVar

import numpy as np

from qonnx_tools._ir import ir
from qonnx_tools.decline import Decline
from qonnx_tools.domains import STANDARD, canonical_domain
from qonnx_tools.streamline._graph import (
    Editor,
    RulePass,
    expand_to_rank,
    fits,
    is_op,
    rank,
    value_varying_axes,
    varying_axes,
)
from qonnx_tools.streamline.thresholds import F32

F64 = np.float64

#: A planner: (kind "Mul"/"Add", dynamic input x, constant c, consumer P, input index, editor)
#: -> the constant to apply after P, a Decline (why not), or None (P is not this pass's business).
Planner = Callable[[str, ir.Value, np.ndarray, ir.Node, int, Editor], "np.ndarray | Decline | None"]


def _scalar(c: np.ndarray) -> np.ndarray:
    return np.asarray(c, dtype=F32).reshape(-1)[:1].reshape(())


def _other_outputs_used(node: ir.Node) -> bool:
    return any(o.uses() or o.is_graph_output() for o in node.outputs[1:])


# -- planners -------------------------------------------------------------------------------


def plan_matmul(kind: str, x: ir.Value, c: np.ndarray, p: ir.Node, idx: int, ed: Editor):
    if not is_op(p, "MatMul") or idx not in (0, 1):
        return None
    if p.inputs[0] is p.inputs[1]:
        return Decline("both MatMul operands are the same tensor")
    r = rank(x)
    if kind == "Mul":
        if c.size == 1:
            return _scalar(c)
        if r is None:
            return Decline("rank unknown (run infer-shapes)")
        cf = expand_to_rank(c, r)
        if cf is None or r < 2:
            return Decline("non-scalar factor on a 1-D operand")
        axis = -1 if idx == 0 else -2
        if cf.shape[axis] != 1:
            return Decline("factor varies along the reduction axis (per-input-channel): it cannot move past MatMul")
        return cf.astype(F32)
    other = ed.const(p.inputs[1 - idx])
    if other is None:
        return Decline("the other MatMul operand is not constant")
    if r is None:
        return Decline("rank unknown (run infer-shapes)")
    w = other.astype(F64)
    cf = expand_to_rank(c, max(r, 1)).astype(F64)
    if idx == 0:  # (x + b) @ W
        k = w.shape[-2] if w.ndim >= 2 else w.shape[0]
        if r >= 2 and cf.shape[-2] != 1:
            return Decline("bias varies along the rows: (x + b) W is not x W + const")
        cf = np.broadcast_to(cf, cf.shape[:-1] + (k,))
        out = np.matmul(cf, w)
    else:  # W @ (x + b)
        k = w.shape[-1]
        if r >= 2:
            if cf.shape[-1] != 1:
                return Decline("bias varies along the columns: W (x + b) is not W x + const")
            cf = np.broadcast_to(cf, cf.shape[:-2] + (k, 1))
        else:
            cf = np.broadcast_to(cf, (k,))
        out = np.matmul(w, cf)
    return np.asarray(out).astype(F32)


def plan_conv(kind: str, x: ir.Value, c: np.ndarray, p: ir.Node, idx: int, ed: Editor):
    if not is_op(p, "Conv") or idx != 0:
        return None
    if len(p.inputs) > 2 and p.inputs[2] is not None:
        return Decline("Conv has a bias input (run extract-conv-bias)")
    w = ed.const(p.inputs[1])
    group = p.attributes.get_int("group", 1)
    if kind == "Mul" and c.size == 1:
        return _scalar(c)
    if w is None:
        return Decline("Conv weights are not constant")
    r = rank(x) or w.ndim
    cf = expand_to_rank(c, r)
    if cf is None:
        return Decline("constant has more dimensions than the input")
    vary = varying_axes(cf)
    if vary not in ((), (1,)):
        return Decline("constant varies along non-channel axes")
    cout, cin_g = w.shape[0], w.shape[1]
    cin = cin_g * group
    vec = np.broadcast_to(cf.reshape(-1) if vary else cf.reshape(1), (cin,)).astype(F64)
    in_channel = (np.arange(cout) // max(cout // group, 1))[:, None] * cin_g + np.arange(cin_g)[None, :]
    if kind == "Mul":
        if cin_g != 1:
            return Decline("per-channel factor cannot move past a Conv that mixes channels (not depthwise)")
        out = vec[in_channel[:, 0]]
    else:
        pads = p.attributes.get_ints("pads", ())
        auto_pad = p.attributes.get_string("auto_pad", "NOTSET")
        if any(pads) or auto_pad not in ("NOTSET", "VALID"):
            return Decline("Conv pads with zeros: an Add in front of it does not commute")
        wsum = w.astype(F64).reshape(cout, cin_g, -1).sum(axis=2)
        out = (wsum * vec[in_channel]).sum(axis=1)
    return out.reshape((1, cout) + (1,) * (w.ndim - 2)).astype(F32)


def _pool_constant(kind: str, x: ir.Value, c: np.ndarray, p: ir.Node) -> np.ndarray | Decline:
    if c.size == 1:
        return _scalar(c)
    r = rank(x)
    if r is None:
        return Decline("rank unknown (run infer-shapes)")
    cf = expand_to_rank(c, r)
    if cf is None or not set(varying_axes(cf)) <= {0, 1}:
        return Decline("constant varies along spatial axes")
    return cf.astype(F32)


def plan_maxpool(kind: str, x: ir.Value, c: np.ndarray, p: ir.Node, idx: int, ed: Editor):
    if canonical_domain(p.domain) != STANDARD or p.op_type not in ("MaxPool", "GlobalMaxPool") or idx != 0:
        return None
    if _other_outputs_used(p):
        return Decline("MaxPool indices output is used")
    if kind == "Mul" and not np.all(c > 0):
        return Decline("factor is not positive: max(a x) = a max(x) only for a > 0")
    return _pool_constant(kind, x, c, p)


def plan_avgpool(kind: str, x: ir.Value, c: np.ndarray, p: ir.Node, idx: int, ed: Editor):
    if canonical_domain(p.domain) != STANDARD or p.op_type not in ("AveragePool", "GlobalAveragePool") or idx != 0:
        return None
    if kind == "Add" and p.op_type == "AveragePool":
        pads = p.attributes.get_ints("pads", ())
        padded = any(pads) or p.attributes.get_string("auto_pad", "NOTSET") not in ("NOTSET", "VALID")
        if padded and p.attributes.get_int("count_include_pad", 0):
            return Decline("AveragePool counts zero padding: an Add in front of it does not commute")
    return _pool_constant(kind, x, c, p)


def plan_relu(kind: str, x: ir.Value, c: np.ndarray, p: ir.Node, idx: int, ed: Editor):
    if not is_op(p, "Relu"):
        return None
    if kind != "Mul":
        return Decline("an Add does not commute with Relu")
    if not np.all(c > 0):
        return Decline("factor is not positive: relu(a x) = a relu(x) only for a > 0")
    return c.astype(F32) if c.size > 1 else _scalar(c)


_RESHAPES = ("Transpose", "Reshape", "Flatten", "Squeeze", "Unsqueeze")


def plan_reshape(kind: str, x: ir.Value, c: np.ndarray, p: ir.Node, idx: int, ed: Editor):
    if canonical_domain(p.domain) != STANDARD or p.op_type not in _RESHAPES or idx != 0:
        return None
    if c.size == 1:
        return _scalar(c)
    r = rank(x)
    if r is None:
        return Decline("rank unknown (run infer-shapes)")
    cf = expand_to_rank(c, r)
    if cf is None:
        return Decline("constant has more dimensions than the input")
    if p.op_type == "Transpose":
        perm = p.attributes.get_ints("perm")
        perm = list(perm) if perm is not None else list(range(r))[::-1]
        return cf.transpose(perm).astype(F32)
    out = p.outputs[0]
    if x.shape is None or out.shape is None:
        return Decline("shapes unknown (run infer-shapes)")
    in_dims, out_dims = list(x.shape), list(out.shape)
    if cf.shape[0] != 1:
        return Decline("constant varies along the batch axis")
    if not in_dims or not out_dims or in_dims[0] != out_dims[0]:
        return Decline(f"{p.op_type} changes the batch axis; only a scalar can move past it")
    rest_in, rest_out = in_dims[1:], out_dims[1:]
    if not all(isinstance(d, int) for d in rest_in + rest_out):
        return Decline("non-batch dimensions are not static")
    full = np.broadcast_to(cf, (1, *rest_in)).reshape((1, *rest_out))
    vary = value_varying_axes(full)
    if len(vary) > 1:
        return Decline("per-channel constant would become per-element after the reshape")
    index = tuple(slice(None) if a in vary else slice(0, 1) for a in range(full.ndim))
    return np.ascontiguousarray(full[index]).astype(F32)


# -- the passes -------------------------------------------------------------------------------


class _MovePass(RulePass):
    """Move ``Op(x, c)`` (Op in ``kinds``) past each consumer some planner accepts."""

    kinds: ClassVar[tuple[str, ...]] = ("Mul",)
    planners: ClassVar[tuple[Planner, ...]] = ()

    def visit(self, node: ir.Node, editor: Editor):
        split = editor.const_operand(node, self.kinds)
        if split is None:
            return None
        x, c, _ = split
        if c.dtype.kind != "f" or not fits(c, x):
            return None
        out = node.outputs[0]
        moved: list[ir.Node] = []
        reasons: list[str] = []
        for use in out.uses():
            p, idx = use.node, use.idx
            if p.graph is not editor.graph:
                continue
            plan = None
            for planner in self.planners:
                plan = planner(node.op_type, x, c, p, idx, editor)
                if plan is not None:
                    break
            if plan is None:
                continue
            if isinstance(plan, Decline):
                reasons.append(f"not past {p.op_type} {p.name!r}: {plan.reason}")
                continue
            if _other_outputs_used(p):
                reasons.append(f"not past {p.op_type} {p.name!r}: it has several outputs")
                continue
            editor.set_input(p, idx, x)
            new = editor.insert_after_value(p.outputs[0], node.op_type, plan, f"{p.name or node.name}_moved")
            moved.append(new)
        if moved:
            editor.drop_if_dead(node)
            return moved + [x.producer()]  # the op feeding x may now be able to move too
        return Decline("; ".join(reasons)) if reasons else None


@dataclass
class MoveMulPastLinear(_MovePass, name="move-mul-past-linear"):
    """Mul by a scalar / per-row / per-channel constant past MatMul, bias-free Conv (per channel: depthwise
    only), AveragePool and Relu (positive only); fan-out safe"""
    kinds: ClassVar[tuple[str, ...]] = ("Mul",)
    planners: ClassVar[tuple[Planner, ...]] = (plan_matmul, plan_conv, plan_avgpool, plan_relu)


@dataclass
class MoveAddPastLinear(_MovePass, name="move-add-past-linear"):
    """Add of a constant past MatMul with a constant operand (x W + b W), bias-free Conv without padding,
    unpadded AveragePool / GlobalAveragePool; fan-out safe"""
    kinds: ClassVar[tuple[str, ...]] = ("Add",)
    planners: ClassVar[tuple[Planner, ...]] = (plan_matmul, plan_conv, plan_avgpool)


@dataclass
class MovePastMaxPool(_MovePass, name="move-past-maxpool"):
    """Mul by positive (scalar / per-channel) constants and Add of constants past MaxPool"""
    kinds: ClassVar[tuple[str, ...]] = ("Mul", "Add")
    planners: ClassVar[tuple[Planner, ...]] = (plan_maxpool,)


@dataclass
class MovePastReshape(_MovePass, name="move-past-reshape"):
    """Mul / Add by constants past Transpose (constant transposed), Reshape, Flatten, Squeeze, Unsqueeze
    (scalar, or per-channel when it stays per-channel)"""
    kinds: ClassVar[tuple[str, ...]] = ("Mul", "Add")
    planners: ClassVar[tuple[Planner, ...]] = (plan_reshape,)


@dataclass
class MoveAddPastMul(RulePass, name="move-add-past-mul"):
    """(x + b) * a -> x * a + b * a for constants a, b (the Add stays for other consumers)"""

    def visit(self, node: ir.Node, editor: Editor):
        split = editor.const_operand(node, ("Mul",))
        if split is None:
            return None
        m, a, _ = split
        found = editor.scaled(m, ("Add",))
        if found is None or a.dtype.kind != "f":
            return None
        add, x, b = found
        if not fits(b, x) or not fits(a, x):
            return Decline("constants would broadcast the tensor to a larger shape")
        ba = (b.astype(F64) * a.astype(F64)).astype(F32)
        if ba.size == 1:
            ba = ba.reshape(())
        idx = 0 if node.inputs[0] is m else 1
        editor.set_input(node, idx, x)
        new = editor.insert_after_value(node.outputs[0], "Add", ba, f"{node.name or 'mul'}_bias")
        editor.drop_if_dead(add)
        return [node, new, x.producer()]

