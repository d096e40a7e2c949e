"""``streamline_report(model)``: what is still not integer after streamlining, and why.

The target form (FINN): MatMul/Conv with integer-valued constant weights and integer
inputs, MultiThreshold, MaxPool, data movement (Reshape/Flatten/Transpose/...),
integer residual Adds/Concats, and at most one trailing *scalar* Mul and one
trailing scalar Add in front of each graph output. Every other node gets a row
``(node name, op type, reason)``; for a Mul/Add by a constant the reason says why
it could not move past / into its consumer (the rules' own planners are asked, so
the reason is the one the pass had). Datatype annotations are read as they are:
run ``infer-datatypes`` first (``streamline`` does).

The report agrees with the annotations: a node in the form above whose float output
is not annotated with an integer datatype (or a MatMul/Conv whose weight is not) is
listed too. The only float outputs not listed are those of the trailing Mul/Add and
of data movement applied to a float graph input before its first quantizer.
"""

from __future__ import annotations

import numpy as np

from qonnx_tools._ir import ir
from qonnx_tools.annotations import get_datatype
from qonnx_tools.decline import Decline
from qonnx_tools.domains import QONNX, STANDARD, canonical_domain
from qonnx_tools.graph_order import topological_order
from qonnx_tools.streamline._graph import Editor, float_attr, is_mt, is_op
from qonnx_tools.streamline.absorb import _linear_weight, plan_absorb
from qonnx_tools.streamline.frontend import plan_activation_quant, plan_trunc
from qonnx_tools.streamline.move import (
    plan_avgpool,
    plan_conv,
    plan_matmul,
    plan_maxpool,
    plan_relu,
    plan_reshape,
)

#: Ops that only move or select data: integer in, integer out.
PASS_THROUGH = frozenset(
    {
        "Reshape", "Flatten", "Transpose", "Squeeze", "Unsqueeze", "Identity", "Concat", "Split", "Slice",
        "MaxPool", "GlobalMaxPool", "Gather", "Tile", "Expand", "DepthToSpace", "SpaceToDepth",
    }
)
_ARITH = ("Mul", "Add", "Sub", "Div")
_MOVE_PLANNERS = (plan_matmul, plan_conv, plan_avgpool, plan_relu, plan_maxpool, plan_reshape)


def streamline_report(model: ir.Model, *, max_bits: int = 8) -> list[tuple[str, str, str]]:
    """One ``(node, op, reason)`` row per node that is not in integer dataflow form."""
    editor = Editor(model)
    tail = _trailing_nodes(model, editor)
    float_input = {id(v) for v in model.graph.inputs if v.const_value is None and not _is_int(v)}
    rows = []
    for node in topological_order(model.graph):
        moves = canonical_domain(node.domain) == STANDARD and node.op_type in PASS_THROUGH
        if moves and node.inputs and node.inputs[0] is not None and id(node.inputs[0]) in float_input:
            float_input.update(id(v) for v in node.outputs)  # the float input moved: quantized further on
            continue
        why = _reason(node, editor, tail, max_bits)
        if why is None and id(node) not in tail:
            why = _output_reason(node)
        if why is not None and why.reason:
            op = node.op_type if canonical_domain(node.domain) in (STANDARD, QONNX) else f"{node.domain}:{node.op_type}"
            rows.append((node.name or "", op, why.reason))
    return rows


def _is_int(value: ir.Value | None) -> bool:
    if value is None:
        return False
    dt = get_datatype(value)
    return dt is not None and dt.is_integer


def _annotation(value: ir.Value) -> str:
    dt = get_datatype(value)
    return "has no datatype annotation" if dt is None else f"is annotated {dt}"


def _output_reason(node: ir.Node) -> Decline | None:
    """Why a node in integer form is listed all the same: a float output without an integer datatype."""
    for value in node.outputs:
        dtype = value.dtype
        if (dtype is None or dtype.is_floating_point()) and not _is_int(value):
            return Decline(f"output {value.name!r} {_annotation(value)}, not an integer datatype")
    return None


def _trailing_nodes(model: ir.Model, editor: Editor) -> set[int]:
    """ids of the allowed trailing scalar Mul / Add nodes: ``... -> [Mul(s)] -> [Add(b)] -> output``."""
    allowed: set[int] = set()
    for out in model.graph.outputs:
        value = out
        for op in ("Add", "Mul"):
            producer = value.producer()
            if producer is None or not is_op(producer, op):
                continue
            if value is not out and (len(value.uses()) != 1 or value.is_graph_output()):
                break
            split = editor.split_const(producer)
            if split is None:
                break
            if split[1].size == 1:
                allowed.add(id(producer))  # a per-channel trailing Add is reported, the Mul before it is not
            value = split[0]
    return allowed


def _reason(node: ir.Node, editor: Editor, tail: set[int], max_bits: int) -> Decline | None:
    domain = canonical_domain(node.domain)
    if is_mt(node):
        t = editor.const(node.inputs[1]) if len(node.inputs) > 1 else None
        if t is None:
            return Decline("thresholds are not constant")
        scale, bias = float_attr(node, "out_scale", 1.0), float_attr(node, "out_bias", 0.0)
        if scale != round(scale) or bias != round(bias):
            return Decline(f"non-integer output (out_scale={scale:g}, out_bias={bias:g})")
        return None
    if domain == STANDARD and node.op_type in ("MatMul", "Conv"):
        return _linear_reason(node, editor)
    if domain == STANDARD and node.op_type in PASS_THROUGH:
        return None
    if domain == STANDARD and node.op_type in _ARITH:
        return _arith_reason(node, editor, tail)
    if domain == QONNX and node.op_type in ("Quant", "IntQuant", "BipolarQuant"):
        plan = plan_activation_quant(node, editor, max_bits)
        why = plan.reason if isinstance(plan, Decline) else "convertible (run quant-to-multithreshold)"
        return Decline(f"quantizer not converted: {why}")
    if domain == QONNX and node.op_type == "Trunc":
        plan = plan_trunc(node, editor, max_bits)
        why = plan.reason if isinstance(plan, Decline) else "convertible (run trunc-to-multithreshold)"
        return Decline(f"Trunc not converted: {why}")
    if domain == STANDARD and node.op_type == "Relu":
        users = [u.node for u in node.outputs[0].uses()]
        if any(is_mt(u) for u in users):
            return Decline("Relu in front of a MultiThreshold not absorbed")
        return Decline("Relu with no MultiThreshold after it (float activation)")
    if domain == STANDARD and node.op_type in ("AveragePool", "GlobalAveragePool"):
        return Decline("average pool not in integer form (needs a MultiThreshold consumer: avgpool-to-sumpool)")
    return Decline(f"{node.op_type} is not part of the integer dataflow form")


def _linear_reason(node: ir.Node, editor: Editor) -> Decline | None:
    weight = _linear_weight(node, editor)
    if weight is None:
        return Decline("no constant weight operand (both operands dynamic)")
    w_idx, w = weight
    if not np.all(np.isfinite(w)) or not np.array_equal(w, np.round(w)):
        return Decline("weights are not integer-valued (weight quantizer not folded into integers)")
    if is_op(node, "Conv") and len(node.inputs) > 2 and node.inputs[2] is not None:
        return Decline("Conv keeps a bias input")
    data = node.inputs[1 - w_idx] if is_op(node, "MatMul") else node.inputs[0]
    if _is_int(data):
        if not _is_int(node.inputs[w_idx]):
            return Decline(f"integer-valued weight {node.inputs[w_idx].name!r} {_annotation(node.inputs[w_idx])}, "
                           "not an integer datatype")
        return None
    if data.is_graph_input():
        return Decline(f"data input {data.name!r} is a float graph input (the model has no input quantizer)")
    producer = data.producer()
    where = f"{producer.op_type} {producer.name!r}" if producer is not None else "?"
    return Decline(f"data input is not integer-typed (from {where})")


def _arith_reason(node: ir.Node, editor: Editor, tail: set[int]) -> Decline | None:
    split = editor.split_const(node)
    if split is None:
        if len(node.inputs) == 2 and all(_is_int(v) for v in node.inputs) and node.op_type in ("Add", "Sub"):
            return None  # integer residual join
        if node.op_type in ("Add", "Sub"):
            a, b = (editor.scaled(v, ("Mul",)) for v in node.inputs)
            if a is not None and b is not None:
                return Decline(f"residual {node.op_type} of streams with different scales")
            return Decline(f"residual {node.op_type} of non-integer streams")
        return Decline(f"{node.op_type} of two dynamic tensors")
    if id(node) in tail:
        return None
    x, c, _ = split
    out = node.outputs[0]
    reasons = []
    if out.is_graph_output():
        kind = "scalar" if c.size == 1 else "per-channel"
        reasons.append(f"trailing {kind} {node.op_type} (no MultiThreshold after it to absorb it)")
    for use in out.uses():
        p, idx = use.node, use.idx
        reasons.append(f"-> {p.op_type} {p.name!r}: {_consumer_reason(node, x, c, p, idx, editor)}")
    return Decline("; ".join(reasons) or "unused")


def _consumer_reason(node: ir.Node, x, c, p: ir.Node, idx: int, editor: Editor) -> str:
    if is_mt(p):
        plan = plan_absorb(p, editor, ("Relu", "Add", "Sub", "Mul", "Div"))
        return plan.reason if isinstance(plan, Decline) else "absorbable (fixpoint bound reached?)"
    if node.op_type not in ("Mul", "Add"):
        return f"{node.op_type} by a constant (not canonicalised to Mul/Add)"
    for planner in _MOVE_PLANNERS:
        plan = planner(node.op_type, x, c, p, idx, editor)
        if plan is None:
            continue
        return plan.reason if isinstance(plan, Decline) else "movable (fixpoint bound reached?)"
    if node.op_type == "Add" and is_op(p, "Mul"):
        return "movable (fixpoint bound reached?)"
    if is_op(p, node.op_type):
        return "collapsible (fixpoint bound reached?)"
    if node.op_type == "Mul" and is_op(p, "Add") and editor.split_const(p) is not None:
        return "kept in front of an Add of a constant (canonical Mul -> Add order) that cannot move on"
    if is_op(p, "Add") or is_op(p, "Sub"):
        return "the other operand of the join is not scaled the same way"
    return f"{node.op_type} does not commute with {p.op_type}"
