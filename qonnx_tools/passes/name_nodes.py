"""name-nodes: unique, readable names for every node and value.

Nodes: by default a node keeps its name when it has one that no earlier node
(in graph order) holds -- exporter names such as ``/features/conv1/Conv`` tie a
node to its source module, and keeping them makes the names stable when a model
is edited and cleaned again. Unnamed nodes and later holders of a duplicate name
get ``<OpType>_<k>``, with ``k`` counting nodes of that op type in graph order
(topological after ``sort``) and skipping names already taken. With
``rename_all`` every node is renamed ``<OpType>_<k>`` by position instead.
Names are unique across the whole model, subgraphs included.

Values: onnx_ir's NameFixPass gives unnamed values ``<producer name>_out<i>``
and makes duplicate names unique. Graph inputs and outputs are never renamed; a
model whose inputs/outputs share names is rejected (BadInputError).
"""

from __future__ import annotations

import collections
from dataclasses import dataclass

from qonnx_tools._ir import common_passes, ir
from qonnx_tools.errors import BadInputError
from qonnx_tools.passes.base import PassResult, QonnxPass


class _ReadableNames:
    """Name generator for NameFixPass (duck-typed onnx_ir NameGenerator)."""

    def generate_node_name(self, node: ir.Node) -> str:
        return node.name or node.op_type

    def generate_value_name(self, value: ir.Value) -> str:
        producer = value.producer()
        if producer is not None and producer.name:
            return f"{producer.name}_out{value.index()}"
        return value.name or "v"


def _check_interface(graph: ir.Graph) -> None:
    seen: dict[str, ir.Value] = {}
    for value in [*graph.inputs, *graph.outputs]:
        if not value.name:
            raise BadInputError(f"graph {graph.name!r} has an unnamed input or output")
        other = seen.setdefault(value.name, value)
        if other is not value:
            raise BadInputError(f"graph {graph.name!r}: two different inputs/outputs are named {value.name!r}")


@dataclass
class NameNodes(QonnxPass, name="name-nodes"):
    """unique node names (existing unique names kept, others <OpType>_<k>) and unique value names; graph
    inputs/outputs never renamed"""

    rename_all: bool = False

    def call(self, model: ir.Model) -> PassResult:
        _check_interface(model.graph)
        modified = self._name_nodes(model)
        modified |= bool(common_passes.NameFixPass(name_generator=_ReadableNames())(model).modified)
        return PassResult(model, modified)

    def _name_nodes(self, model: ir.Model) -> bool:
        nodes = list(ir.traversal.RecursiveGraphIterator(model.graph))
        used: set[str] = set()
        keep: set[int] = set()
        if not self.rename_all:
            for node in nodes:
                if node.name and node.name not in used:
                    used.add(node.name)
                    keep.add(id(node))
        counters: collections.Counter[str] = collections.Counter()
        modified = False
        for node in nodes:
            if id(node) in keep:
                continue
            name = f"{node.op_type}_{counters[node.op_type]}"
            while name in used:
                counters[node.op_type] += 1
                name = f"{node.op_type}_{counters[node.op_type]}"
            counters[node.op_type] += 1
            used.add(name)
            if node.name != name:
                node.name = name
                modified = True
        return modified
