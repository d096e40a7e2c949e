"""merge-reshapes: chains of Reshape/Flatten become one Reshape; a Reshape to its input's own shape goes.

Exporters flatten in several steps (``Flatten`` then ``Reshape``, or two Reshapes
around a removed op); onnxsim and onnxslim merge such chains, and hls4ml builds a
layer for each. For a ``Reshape`` or ``Flatten`` node whose data input comes from
another ``Reshape``/``Flatten`` that nobody else reads, the pair becomes a single
``Reshape`` of the first node's input to the second node's output shape. That
output shape must be known, all numbers except at most one symbolic dimension
(written ``-1``: element counts are preserved, so the symbol is implied). A
``Reshape``/``Flatten`` whose static output shape equals its input's is removed.

Exact by construction: a reshape only reinterprets the row-major element order, so
a chain of them is the one reshape to the final shape. Graph output names stay
(``bypass``). One linear sweep in topological order, so a chain of any length folds
in one run; use-def links only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qonnx_tools._ir import ir
from qonnx_tools.domains import STANDARD, canonical_domain
from qonnx_tools.graph_order import topological_order
from qonnx_tools.passes._rewrite import all_value_names, bypass, new_initializer, unique_name
from qonnx_tools.passes.base import PassResult, QonnxPass

_RESHAPES = ("Reshape", "Flatten")


def _is_reshape(node: ir.Node | None) -> bool:
    return node is not None and node.op_type in _RESHAPES and canonical_domain(node.domain) == STANDARD


def _target(shape: ir.Shape | None) -> list[int] | None:
    """A Reshape target giving exactly ``shape`` (one symbolic dim as -1), or None."""
    if shape is None:
        return None
    dims = [d if isinstance(d, int) else -1 for d in shape]
    return dims if dims.count(-1) <= 1 else None


@dataclass
class MergeReshapes(QonnxPass, name="merge-reshapes"):
    """Reshape/Flatten of a Reshape/Flatten -> one Reshape to the final shape; a reshape to its input's own
    static shape is removed"""

    def call(self, model: ir.Model) -> PassResult:
        graph = model.graph
        used: set[str] | None = None
        modified = False
        for node in topological_order(graph):
            if not _is_reshape(node) or not node.inputs or node.inputs[0] is None or len(node.outputs) != 1:
                continue
            data, out = node.inputs[0], node.outputs[0]
            if _same_static_shape(data, out) and bypass(node, data, out):
                modified = True
                continue
            first = data.producer()
            if not _is_reshape(first) or len(data.uses()) != 1 or data.is_graph_output() or first.graph is not graph:
                continue
            target = _target(out.shape)
            if target is None or first.inputs[0] is None:
                continue
            if used is None:
                used = all_value_names(model)
            shape = new_initializer(graph, np.array(target, np.int64), unique_name(f"{node.name or 'reshape'}_shape", used))
            merged = ir.Node("", "Reshape", [first.inputs[0], shape], name=node.name, num_outputs=1)
            graph.insert_before(node, merged)
            new_out = merged.outputs[0]
            new_out.type, new_out.shape = out.type, out.shape
            new_out.meta.update(out.meta)
            name = out.name
            out.replace_all_uses_with(new_out, replace_graph_outputs=True)
            out.name = None
            new_out.name = name
            graph.remove([node, first], safe=True)
            modified = True
        return PassResult(model, modified)


def _same_static_shape(a: ir.Value, b: ir.Value) -> bool:
    if a.shape is None or b.shape is None:
        return False
    dims_a, dims_b = list(a.shape), list(b.shape)
    return all(isinstance(d, int) for d in dims_a) and dims_a == dims_b
