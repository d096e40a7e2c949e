"""Shared machinery of ``sub-to-add`` (sub_to_add.py) and ``div-to-mul`` (div_to_mul.py):
a one-node rewrite ``Op(x, c) -> NewOp(x, f(c))`` for a constant right operand ``c``.

Downstream tools (streamlining, absorbing scalar ops into thresholds or into the
next layer) only need to handle Add and Mul once these run.

``c`` must be a constant: an initializer that is *not* also a graph input (a
graph input can be overridden by the caller; Brevitas lists its weights that
way -- run ``remove-static-inputs`` first), or the output of a ``Constant``
node. Which operand is the constant is found by looking at both: ``c - x`` and
``c / x`` (constant on the left) are not of this form and are left alone, as
are nodes whose operands are both dynamic.

Models below ai.onnx opset 7 (whose Sub/Div/Add/Mul broadcast through
``broadcast``/``axis`` attributes) are left alone; run ``opset-upgrade`` first.

The new constant ``f(c)`` becomes a new initializer (shared when one constant
feeds several nodes); the old constant is removed when nothing else uses it.

Implementation: onnxscript's pattern rewriter. Each rewrite is a one-node
pattern (``Sub(x, c)`` / ``Div(x, c)``) plus a condition that decides and says
why it declines (a ``Decline``, recorded on the pass -- ``declined``, one line per
node -- and handed to the rewriter as ``MatchResult.fail(reason)`` by
``rewriter_condition``); the replacement is a single Add / Mul. The rewriter is a
good fit here: the patterns are single nodes with a fixed operand order, and it
handles the rewiring, graph-output names and subgraphs.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from qonnx_tools._ir import ir, rewriter
from qonnx_tools.constants import constant_array
from qonnx_tools.decline import Decline
from qonnx_tools.domains import STANDARD, opset_of
from qonnx_tools.passes._rewrite import all_value_names, rewriter_condition, unique_name
from qonnx_tools.passes.base import QonnxPass


def is_float(dtype: np.dtype) -> bool:
    """Whether ``dtype`` is a floating-point type (NumPy or ml_dtypes)."""
    try:
        return ir.DataType.from_numpy(np.dtype(dtype)).is_floating_point()
    except (TypeError, ValueError):
        return False


def _legacy_broadcast(model: ir.Model, node: ir.Node) -> Decline | None:
    """Why opset < 7 arithmetic (``broadcast``/``axis`` attributes) cannot be rewritten, or None."""
    if opset_of(model, STANDARD) < 7 or len(node.attributes):
        return Decline("ai.onnx opset < 7 (legacy broadcast attributes); run opset-upgrade first")
    return None


def _constant_problem(value: ir.Value | None) -> str:
    """The part of a decline reason that says why ``value`` is not a usable constant."""
    if value is not None and value.const_value is not None and value.is_graph_input():
        return (
            f"{value.name!r} is an initializer that is also a graph input (overridable; run remove-static-inputs first)"
        )
    return "operand is computed at run time"


class ConstantOperandRule:
    """One-node rewrite ``Op(x, c) -> NewOp(x, f(c))`` for a constant right operand ``c``."""

    def __init__(
        self,
        op_type: str,
        new_op: str,
        transform: Callable[[np.ndarray], np.ndarray | Decline],
        names: set[str],
        owner: QonnxPass,
        suffix: str,
    ) -> None:
        self.op_type, self.new_op, self.transform = op_type, new_op, transform
        self.names, self.owner, self.suffix = names, owner, suffix  # owner: the pass that records declines
        # (id(source constant value), id(graph)) -> (source value, new initializer value)
        self.created: dict[tuple[int, int], tuple[ir.Value, ir.Value]] = {}
        self._graph: ir.Graph | None = None  # the graph of the match being rewritten

    def rule(self):
        op_type = self.op_type

        def target(op, x, c):
            return getattr(op, op_type)(x, c, _outputs=["y"])

        return rewriter.pattern.RewriteRule(target, self._replace, self._condition)

    def _plan(self, x: ir.Value | None, c: ir.Value | None) -> np.ndarray | Decline:
        if c is None or x is None:
            return Decline("missing operand")
        if (id(c), id(self._graph)) in self.created:
            return self.created[id(c), id(self._graph)][1].const_value.numpy()
        array = constant_array(c, overridable=False)
        if array is None:
            if constant_array(x, overridable=False) is not None:
                return Decline(
                    f"constant is the left operand ({self.op_type}(c, x)); only {self.op_type}(x, c) is rewritten", x
                )
            return Decline(f"right operand is not a constant: {_constant_problem(c)}", c)
        return self.transform(array)

    def _condition(self, context, x, c, y, **_):
        self._graph = context.graph_or_function
        if isinstance(self._graph, ir.Function):
            plan = Decline("inside a model-local function (no initializers there)")
        else:
            plan = _legacy_broadcast(context.model, y.producer()) or self._plan(x, c)
        return rewriter_condition(self.owner, y.producer(), plan)

    def _replace(self, op, x, c, y, **_):
        key = (id(c), id(self._graph))
        cached = self.created.get(key)
        if cached is not None:
            new_c = cached[1]
        else:
            plan = self._plan(x, c)
            if isinstance(plan, Decline):  # pragma: no cover - the condition rejected (and recorded) it already
                return None
            base = (c.name or "const") + self.suffix
            new_c = op.initializer(ir.Tensor(np.array(plan, order="C")), name=unique_name(base, self.names))
            self.created[key] = (c, new_c)
        out = getattr(op, self.new_op)(x, new_c, _name=y.producer().name)
        out.meta.update(y.meta)  # quantized-datatype annotations; name, type and shape follow in the rewriter
        out.metadata_props.update(y.metadata_props)
        return out

    def drop_unused_sources(self) -> None:
        """Remove source constants (initializers, Constant nodes) nothing uses any more."""
        for source, _ in self.created.values():
            if source.uses() or source.is_graph_output() or source.is_graph_input():
                continue
            producer = source.producer()
            if producer is not None:
                if producer.graph is not None and not any(o.uses() or o.is_graph_output() for o in producer.outputs):
                    producer.graph.remove(producer, safe=True)
            elif source.is_initializer() and source.graph is not None and source.name in source.graph.initializers:
                source.graph.initializers.pop(source.name)


def run_rule(model: ir.Model, make_rule: Callable[[set[str]], ConstantOperandRule]) -> bool:
    """Apply the rule ``make_rule(names in use)`` everywhere; drop the constants it made unused."""
    rule = make_rule(all_value_names(model))
    count = rewriter.RewriteRuleSet([rule.rule()]).apply_to_model(model)
    if count:
        rule.drop_unused_sources()
    return bool(count)
