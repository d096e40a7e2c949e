"""Topological order of a graph's nodes, computed from use-def links in linear time.

The protobuf counterpart, for files not yet (or never) built into the IR, is
``validate.topological_indices``/``find_cycle``: nodes there are linked by value names
(and by the outer names their subgraphs read), here by onnx_ir Value objects.
"""

from __future__ import annotations

from collections import deque

from qonnx_tools._ir import ir
from qonnx_tools.errors import BadInputError


def topological_order(graph: ir.Graph) -> list[ir.Node]:
    """Nodes of ``graph`` so that every producer precedes its consumers (Kahn's algorithm).

    Does not modify the graph (unlike ``ir.Graph.sort``), so the executor can
    order a model it was only asked to read. Raises BadInputError on a cycle,
    naming one node on it.
    """
    nodes = list(graph)
    position = {id(node): i for i, node in enumerate(nodes)}
    pending = [0] * len(nodes)
    for i, node in enumerate(nodes):
        producers = {id(v.producer()) for v in node.inputs if v is not None and v.producer() is not None}
        pending[i] = sum(1 for p in producers if p in position)
    ready = deque(i for i, count in enumerate(pending) if count == 0)
    order: list[ir.Node] = []
    while ready:
        node = nodes[ready.popleft()]
        order.append(node)
        consumers = {id(user): user for out in node.outputs for user in out.consumers()}
        for key in consumers:
            j = position.get(key)
            if j is None:
                continue
            pending[j] -= 1
            if pending[j] == 0:
                ready.append(j)
    if len(order) != len(nodes):
        stuck = next(n for i, n in enumerate(nodes) if pending[i] > 0)
        raise BadInputError(f"graph {graph.name!r} has a cycle through node {stuck.name!r} ({stuck.op_type})")
    return order
