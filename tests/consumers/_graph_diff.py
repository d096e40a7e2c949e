"""Graph snapshots and node diffs for the consumer scripts of this folder.

Imported by those scripts inside a consumer's own environment: it needs only the
standard library, numpy and onnx (present in every such environment), never this project.
"""

from __future__ import annotations

from collections import Counter

import onnx
from onnx import numpy_helper


def counts(graph: onnx.GraphProto) -> dict:
    """Node / graph-input / initializer counts of ``graph``; ``static_inputs`` are inputs that are initializers."""
    inits = {t.name for t in graph.initializer}
    return {
        "nodes": len(graph.node),
        "inputs": len(graph.input),
        "static_inputs": sum(1 for i in graph.input if i.name in inits),
        "initializers": len(graph.initializer),
        "ops": dict(sorted(Counter(n.op_type for n in graph.node).items())),
    }


def _const_text(tensor: onnx.TensorProto) -> str:
    array = numpy_helper.to_array(tensor)
    shape = "x".join(map(str, array.shape)) or "scalar"
    if array.size <= 4:
        return f"const {shape}={array.reshape(-1).tolist()}"
    return f"const {shape}"


class Describer:
    """Where the tensors of one graph come from: initializer, graph input, or producer (two levels)."""

    def __init__(self, graph: onnx.GraphProto):
        self.inits = {t.name: t for t in graph.initializer}
        self.inputs = {i.name for i in graph.input}
        self.producer = {out: node for node in graph.node for out in node.output}
        self._const: dict[str, bool] = {}

    def is_constant(self, name: str) -> bool:
        """Whether tensor ``name`` is computable from initializers / Constant nodes alone."""
        if not name or name in self.inits:
            return True
        if name in self.inputs:
            return False
        if name not in self._const:
            node = self.producer.get(name)
            self._const[name] = False  # guards cycles
            self._const[name] = node is not None and all(self.is_constant(i) for i in node.input)
        return self._const[name]

    def source(self, name: str, depth: int) -> str:
        if not name:
            return "-"
        if name in self.inits:
            text = _const_text(self.inits[name])
            return text + (" (also a graph input)" if name in self.inputs else "")
        if name in self.inputs:
            return "graph input"
        node = self.producer.get(name)
        if node is None:
            return "undefined"
        if node.op_type == "Constant":
            return "Constant node"
        mark = " [constant]" if self.is_constant(name) else ""
        if depth <= 0:
            return node.op_type + mark
        return f"{node.op_type}({', '.join(self.source(i, depth - 1) for i in node.input)}){mark}"


def _users(graph: onnx.GraphProto) -> dict[str, list[str]]:
    users: dict[str, list[str]] = {}
    for node in graph.node:
        for name in node.input:
            users.setdefault(name, []).append(node.op_type)
    for out in graph.output:
        users.setdefault(out.name, []).append("graph output")
    return users


def describe_nodes(graph: onnx.GraphProto, nodes: list[onnx.NodeProto]) -> list[str]:
    describer = Describer(graph)
    users = _users(graph)
    result = []
    for node in nodes:
        used_by = sorted({u for out in node.output for u in users.get(out, [])})
        text = f"{node.op_type}({', '.join(describer.source(i, 1) for i in node.input)})"
        shown = [f"{a.name}={onnx.helper.get_attribute_value(a)}" for a in node.attribute
                 if a.name in ("perm", "to", "axis", "allowzero")]
        if shown:
            text += " " + " ".join(shown)
        result.append(f"{text} -> {', '.join(used_by) or 'nothing'}")
    return result


def node_diff(before: onnx.GraphProto, after: onnx.GraphProto) -> dict:
    """Which nodes of ``before`` are gone in ``after`` and which are new (with descriptions).

    A node survives when a node of ``after`` has its op type and either its (non-empty) name or
    its outputs: consumers rename either nodes or tensors in one step, never both at once.
    """
    def keys(graph):
        return ({(n.op_type, n.name) for n in graph.node if n.name},
                {(n.op_type, tuple(n.output)) for n in graph.node})

    def survives(node, names, outputs):
        return (node.name and (node.op_type, node.name) in names) or (node.op_type, tuple(node.output)) in outputs

    after_keys, before_keys = keys(after), keys(before)
    removed = [n for n in before.node if not survives(n, *after_keys)]
    added = [n for n in after.node if not survives(n, *before_keys)]
    return {"removed": describe_nodes(before, removed), "added": describe_nodes(after, added)}


def op_difference(before: dict, after: dict) -> tuple[dict, dict]:
    """(removed, added) op-type multisets between two ``counts`` results."""
    b, a = Counter(before["ops"]), Counter(after["ops"])
    return dict(sorted((b - a).items())), dict(sorted((a - b).items()))
