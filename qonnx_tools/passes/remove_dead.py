"""remove-dead: nodes whose outputs nobody uses, unused initializers, unused
optional outputs and trailing empty inputs (onnx_ir's RemoveUnusedNodesPass).

Stale ``value_info`` needs no pass: onnx_ir keeps type information on the values
themselves, drops entries for names that do not exist when loading, and writes
only the values still in the graph when saving.
"""

from __future__ import annotations

from dataclasses import dataclass

from qonnx_tools._ir import common_passes, ir
from qonnx_tools.passes.base import PassResult, QonnxPass


def _node_signature(model: ir.Model) -> list[tuple]:
    """What RemoveUnusedNodesPass may change on kept nodes without counting it."""
    signature = []
    graphs = list(model.graphs()) + list(model.functions.values())
    for graph in graphs:
        for node in graph:
            signature.append(
                (id(node), len(node.inputs), tuple(v.name for v in node.outputs), tuple(node.attributes))
            )
    return signature


@dataclass
class RemoveDead(QonnxPass, name="remove-dead"):
    """remove nodes, initializers and optional outputs that nothing uses"""

    def call(self, model: ir.Model) -> PassResult:
        before = _node_signature(model)
        result = common_passes.RemoveUnusedNodesPass()(model)
        # The onnx_ir pass counts removed nodes/initializers but not trimmed inputs/outputs.
        modified = bool(result.modified) or _node_signature(model) != before
        return PassResult(model, modified)
