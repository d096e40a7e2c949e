"""Graph-editing helpers shared by the streamlining passes (not a pass module).

Everything works through use-def links (``value.uses()``, ``value.producer()``):
no helper scans the graph to find a producer or a consumer.

Conventions used by every rule:

* a *constant* is an initializer that is not a graph input, or a ``Constant``
  output (``constant_array(..., overridable=False)``);
* a rule that rewires a consumer away from a ``Mul``/``Add`` by a constant never
  changes what the other consumers of that node see: the node stays for them
  and is removed only when nothing uses it any more. This is how fan-out
  (residual branches) is handled: the scale is in effect duplicated per consumer;
* a rule, a planner or a converter that leaves a node alone returns a ``Decline``
  (``RulePass.visit``: ``None`` = not this rule's business, a ``Decline`` = why not,
  a list = rewritten, the nodes to visit again).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import ClassVar, Iterable

import numpy as np

from qonnx_tools._ir import ir
from qonnx_tools.constants import constant_array
from qonnx_tools.decline import Decline
from qonnx_tools.domains import QONNX, STANDARD, canonical_domain, canonical_op
from qonnx_tools.graph_order import topological_order
from qonnx_tools.passes._rewrite import all_value_names, new_initializer, unique_name
from qonnx_tools.passes.base import PassResult, QonnxPass

#: Ops that only move data around (values pass through unchanged).
DATA_MOVEMENT = frozenset({"Reshape", "Flatten", "Transpose", "Squeeze", "Unsqueeze", "Identity"})


def is_op(node: ir.Node | None, op_type: str, domain: str = STANDARD) -> bool:
    """True when ``node`` is ``op_type`` of ``domain`` (QONNX aliases such as Quant/IntQuant resolved)."""
    if node is None:
        return False
    dom, op = canonical_op(node.domain, node.op_type)
    if dom != domain:
        return False
    return op == canonical_op(domain, op_type)[1]


def is_mt(node: ir.Node | None) -> bool:
    return is_op(node, "MultiThreshold", QONNX)


def float_attr(node: ir.Node, key: str, default: float) -> float:
    """A QONNX float attribute (MultiThreshold ``out_scale``/``out_bias``): files may store it as an
    INT, which the loader accepts for float attributes of QONNX ops, so both are read."""
    attribute = node.attributes.get(key)
    if attribute is None:
        return default
    return float(attribute.as_int() if attribute.type == ir.AttributeType.INT else attribute.as_float())


def set_attr(node: ir.Node, key: str, value) -> None:
    if isinstance(value, float):
        node.attributes[key] = ir.AttrFloat32(key, value)
    elif isinstance(value, int):
        node.attributes[key] = ir.AttrInt64(key, value)
    elif isinstance(value, str):
        node.attributes[key] = ir.AttrString(key, value)
    else:  # pragma: no cover - not used
        raise TypeError(type(value))


def rank(value: ir.Value | None) -> int | None:
    if value is None or value.shape is None:
        return None
    return len(value.shape)


def static_shape(value: ir.Value | None) -> tuple[int, ...] | None:
    """The shape when every dimension is a known integer, else None."""
    if value is None or value.shape is None:
        return None
    dims = list(value.shape)
    if not all(isinstance(d, int) for d in dims):
        return None
    return tuple(int(d) for d in dims)


def expand_to_rank(c: np.ndarray, r: int) -> np.ndarray | None:
    """``c`` with leading 1-dims so that it has rank ``r`` (None when c has more dims)."""
    if c.ndim > r:
        if c.size == 1:
            return c.reshape((1,) * r)
        return None
    return c.reshape((1,) * (r - c.ndim) + c.shape)


def fits(c: np.ndarray, value: ir.Value | None) -> bool:
    """True when broadcasting ``c`` against ``value`` keeps value's shape (c does not expand it)."""
    if c.ndim == 0:
        return True
    if value is None or value.shape is None:
        return False
    dims = list(value.shape)
    if c.ndim > len(dims):
        return False
    for cdim, xdim in zip(reversed(c.shape), reversed(dims)):
        if cdim != 1 and not (isinstance(xdim, int) and xdim == cdim):
            return False
    return True


def varying_axes(c: np.ndarray) -> tuple[int, ...]:
    """Axes along which ``c`` has more than one element."""
    return tuple(a for a, n in enumerate(c.shape) if n > 1)


def single_axis_vector(
    c: np.ndarray, r: int | None, what: str = "constant"
) -> tuple[np.ndarray, int | None] | Decline:
    """(values of ``c`` as a vector, the one axis of a rank-``r`` tensor it varies along; None for a
    single value), or why not: it varies along several axes (or the rank is unknown)."""
    if c.size == 1:
        return c.reshape(1), None
    if r is None:
        return Decline("rank unknown (run infer-shapes)")
    cf = expand_to_rank(c, r)
    if cf is None:
        return Decline(f"{what} has more axes than the tensor")
    vary = varying_axes(cf)
    if len(vary) != 1:
        return Decline(f"{what} varies along several axes")
    return cf.reshape(-1), vary[0]


def value_varying_axes(c: np.ndarray) -> tuple[int, ...]:
    """Axes along which the *values* of ``c`` change (a repeated value counts as constant)."""
    return tuple(a for a, n in enumerate(c.shape) if n > 1 and not np.all(c == c.take([0], axis=a)))


@dataclass
class Editor:
    """The state of one pass run: the model, fresh names, a constant cache and dead-value cleanup."""

    model: ir.Model
    names: set[str] | None = None
    _const_cache: dict[int, tuple[ir.Value, np.ndarray | None]] = field(default_factory=dict)
    maybe_dead: list[ir.Value] = field(default_factory=list)

    @property
    def graph(self) -> ir.Graph:
        return self.model.graph

    def fresh(self, base: str) -> str:
        if self.names is None:
            self.names = all_value_names(self.model)
        return unique_name(base, self.names)

    # -- constants -------------------------------------------------------------
    def const(self, value: ir.Value | None) -> np.ndarray | None:
        if value is None:
            return None
        hit = self._const_cache.get(id(value))
        if hit is not None and hit[0] is value:
            return hit[1]
        try:
            array = constant_array(value, overridable=False)
        except Exception:  # an undecodable Constant
            array = None
        self._const_cache[id(value)] = (value, array)
        return array

    def split_const(self, node: ir.Node) -> tuple[ir.Value, np.ndarray, int] | None:
        """(dynamic input, constant array, index of the constant) of a two-input node, found by looking."""
        if len(node.inputs) != 2 or node.inputs[0] is None or node.inputs[1] is None:
            return None
        a, b = node.inputs
        ca, cb = self.const(a), self.const(b)
        if cb is not None and ca is None:
            return a, cb, 1
        if ca is not None and cb is None:
            return b, ca, 0
        return None

    def const_operand(self, node: ir.Node | None, op_types: Iterable[str]) -> tuple[ir.Value, np.ndarray, int] | None:
        """``split_const(node)`` when ``node`` is a standard-domain op in ``op_types``, else None."""
        if node is None or canonical_domain(node.domain) != STANDARD or node.op_type not in op_types:
            return None
        return self.split_const(node)

    def scaled(self, value: ir.Value | None, op_types: Iterable[str] = ("Mul",)) -> tuple[ir.Node, ir.Value, np.ndarray] | None:
        """(producer, dynamic input, float constant) when ``value`` is ``Op(x, c)`` for Op in op_types."""
        if value is None:
            return None
        producer = value.producer()
        if producer is None or len(producer.outputs) != 1:
            return None
        split = self.const_operand(producer, op_types)
        if split is None:
            return None
        x, c, _ = split
        if c.dtype.kind != "f":
            return None
        if producer.op_type in ("Sub", "Div") and split[2] != 1:
            return None  # c - x, c / x are not of the form x op c
        return producer, x, c

    def initializer(self, array: np.ndarray, base: str, like: ir.Value | None = None) -> ir.Value:
        """A new initializer under a fresh name (``new_initializer``), with its array cached."""
        array = np.array(array, order="C")  # (np.ascontiguousarray would turn a 0-d array into 1-d)
        value = new_initializer(self.graph, array, self.fresh(base), like=like)
        self._const_cache[id(value)] = (value, array)
        return value

    def set_input(self, node: ir.Node, index: int, value: ir.Value) -> None:
        old = node.inputs[index]
        node.replace_input_with(index, value)
        if old is not None and old is not value:
            self.maybe_dead.append(old)

    # -- structure ---------------------------------------------------------------
    def insert_after_value(
        self, y: ir.Value, op_type: str, constant: np.ndarray | ir.Value, base: str, *, const_first: bool = False
    ) -> ir.Node:
        """Insert ``Op(y, c)`` and make every former use of ``y`` (graph output included) read its result.

        The new output takes y's name when y was a graph output (graph output names never change).
        """
        c_value = constant if isinstance(constant, ir.Value) else self.initializer(constant, f"{base}_c")
        node = ir.node(op_type, [None, None], name=self.fresh(base))
        out = node.outputs[0]
        out.type = y.type
        out.shape = y.shape
        y.replace_all_uses_with(out, replace_graph_outputs=True)
        if const_first:
            node.replace_input_with(0, c_value)
            node.replace_input_with(1, y)
        else:
            node.replace_input_with(0, y)
            node.replace_input_with(1, c_value)
        if out.is_graph_output():
            name = y.name
            y.name = self.fresh(f"{name}_pre")
            out.name = name
            self.names.add(name)
        else:
            out.name = self.fresh(f"{y.name or base}_{op_type.lower()}")
        producer = y.producer()
        if producer is not None and producer.graph is self.graph:
            self.graph.insert_after(producer, node)
        else:
            self._insert_first(node)
        return node

    def insert_before(self, anchor: ir.Node, node: ir.Node) -> None:
        self.graph.insert_before(anchor, node)

    def _insert_first(self, node: ir.Node) -> None:
        first = next(iter(self.graph), None)
        if first is None:
            self.graph.append(node)
        else:
            self.graph.insert_before(first, node)

    def bypass(self, node: ir.Node, keep: ir.Value) -> bool:
        """Remove ``node`` (one output), redirecting its users to ``keep`` (graph output names kept)."""
        from qonnx_tools.passes._rewrite import bypass

        inputs = [v for v in node.inputs if v is not None]
        if not bypass(node, keep, node.outputs[0]):
            return False
        self.maybe_dead.extend(inputs)
        return True

    def drop_if_dead(self, node: ir.Node | None) -> None:
        """Remove ``node`` when none of its outputs is used (and queue its inputs for cleanup)."""
        if node is None or node.graph is not self.graph:
            return
        if any(o.uses() or o.is_graph_output() for o in node.outputs):
            return
        inputs = [v for v in node.inputs if v is not None]
        self.graph.remove(node, safe=True)
        self.maybe_dead.extend(inputs)

    def cleanup(self) -> None:
        """Remove nodes and initializers made unused by this run (transitively)."""
        pending = deque(self.maybe_dead)
        self.maybe_dead = []
        while pending:
            value = pending.popleft()
            if value.uses() or value.is_graph_output() or value.is_graph_input():
                continue
            producer = value.producer()
            if producer is not None:
                if producer.graph is self.graph and not any(o.uses() or o.is_graph_output() for o in producer.outputs):
                    inputs = [v for v in producer.inputs if v is not None]
                    self.graph.remove(producer, safe=True)
                    pending.extend(inputs)
            elif value.is_initializer() and self.graph.initializers.get(value.name) is value:
                del self.graph.initializers[value.name]


class RulePass(QonnxPass):
    """A pass that visits nodes with a worklist (topological order first, then whatever changed).

    Subclasses implement ``visit(node, editor)``, which returns None (not this rule's
    business), a ``Decline`` (left alone, and why) or, after a rewrite, the nodes worth
    visiting again (e.g. a Mul that moved further down), so a scale travels as far as it
    can in one run; the total work is proportional to the number of nodes plus the
    number of rewrites. A node's last decline is recorded (``QonnxPass.decline``) at the
    end of the run, unless a later visit rewrote it or the node is gone.
    """

    #: Safety bound on rewrites per run, relative to the node count (a rule bug must not hang).
    MAX_REWRITES_PER_NODE: ClassVar[int] = 64

    def visit(self, node: ir.Node, editor: Editor) -> list[ir.Node | None] | Decline | None:  # pragma: no cover
        raise NotImplementedError

    def call(self, model: ir.Model) -> PassResult:
        editor = Editor(model)
        graph = model.graph
        queue = deque(topological_order(graph))
        pending: dict[int, tuple[ir.Node, Decline]] = {}
        modified = False
        budget = self.MAX_REWRITES_PER_NODE * (len(queue) + 1)
        while queue and budget > 0:
            node = queue.popleft()
            if node.graph is not graph:
                continue
            result = self.visit(node, editor)
            if result is None:
                continue
            if isinstance(result, Decline):
                pending[id(node)] = (node, result)
                continue
            modified = True
            budget -= 1
            pending.pop(id(node), None)
            for again in reversed(result):
                if again is not None:
                    queue.appendleft(again)
        editor.cleanup()
        for node, why in pending.values():
            if node.graph is graph:
                self.decline(why, node)
        return PassResult(model, modified)
