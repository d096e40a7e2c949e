"""sort: stable topological sort of the graph, subgraphs and functions
(onnx_ir's TopologicalSortPass): independent nodes keep their order.
"""

from __future__ import annotations

from dataclasses import dataclass

from qonnx_tools._ir import common_passes, ir
from qonnx_tools.passes.base import PassResult, QonnxPass


@dataclass
class Sort(QonnxPass, name="sort"):
    """sort nodes topologically (stable: independent nodes keep their order)"""

    def call(self, model: ir.Model) -> PassResult:
        result = common_passes.TopologicalSortPass()(model)
        return PassResult(model, bool(result.modified))
