"""fold-transpose-into-initializer: ``Transpose(W)`` of a constant initializer -> a transposed initializer.

Exporters often write weights in one layout and transpose them in the graph
(e.g. ``MatMul(x, Transpose(W))``). When W is an initializer that is *not* a
graph input (a graph input can be overridden by the caller, so its transpose
must stay a run-time op; run ``remove-static-inputs`` first to fold those), the
Transpose node is replaced by an initializer holding ``W`` transposed, named
like the Transpose's output (a graph output stays a graph output, now backed by
the initializer -- valid ONNX).

If the Transpose was W's only consumer, W is removed: in effect W is transposed
in place. If W has other consumers it stays, and the transposed copy is a new
initializer (memory for both). Annotations (quantized datatype) of W and of the
Transpose output carry over -- transposing does not change the values.

``Constant`` nodes are not handled here (fold-constants covers any constant
subgraph). Subgraph (If/Loop body) Transposes of their own graph's initializers
are handled too.

Implementation: plain use-def code (one node in, zero nodes out: a pattern
rewriter cannot replace a node by an initializer); one linear sweep.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qonnx_tools._ir import ir
from qonnx_tools.decline import Decline
from qonnx_tools.domains import STANDARD, canonical_domain
from qonnx_tools.passes._rewrite import transpose_perm
from qonnx_tools.passes.base import PassResult, QonnxPass


def fold_transpose(node: ir.Node) -> ir.Value | Decline:
    """Replace one Transpose of an initializer by the new initializer (returned), else say why not."""
    graph = node.graph
    source = node.inputs[0] if node.inputs else None
    if graph is None or source is None:
        return Decline("no input")
    if not source.is_initializer() or source.const_value is None:
        return Decline("input is not an initializer", source)
    if source.is_graph_input():
        return Decline(
            f"initializer {source.name!r} is also a graph input (overridable; run remove-static-inputs first)", source
        )
    if graph.initializers.get(source.name) is not source:
        return Decline("input is an initializer of an enclosing graph", source)
    out = node.outputs[0]
    if len(node.outputs) != 1 or out.is_graph_input():
        return Decline("unexpected outputs")
    array = np.asarray(source.const_value.numpy())
    perm = transpose_perm(node, array.ndim)
    if isinstance(perm, Decline):
        return perm
    transposed = np.ascontiguousarray(np.transpose(array, perm))
    name = out.name
    tensor = ir.Tensor(transposed, name=name)
    new = ir.Value(
        name=None,
        shape=ir.Shape(transposed.shape),
        type=ir.TensorType(tensor.dtype),
        const_value=tensor,
        doc_string=out.doc_string,
        metadata_props={**source.metadata_props, **out.metadata_props},
    )
    new.meta.update(source.meta)
    new.meta.update(out.meta)
    out.replace_all_uses_with(new, replace_graph_outputs=True)
    graph.remove(node, safe=True)
    out.name = None
    new.name = name
    graph.register_initializer(new)
    if not (source.uses() or source.is_graph_output()):
        graph.initializers.pop(source.name)
    return new


@dataclass
class FoldTransposeIntoInitializer(QonnxPass, name="fold-transpose-into-initializer"):
    """Transpose of an initializer (not a graph input) -> transposed initializer (in place when the Transpose
    was its only consumer)"""

    def call(self, model: ir.Model) -> PassResult:
        # A worklist, so that Transpose(Transpose(W)) folds completely in one run.
        work = [node for node in ir.traversal.RecursiveGraphIterator(model.graph) if _is_candidate(node)]
        modified = False
        while work:
            node = work.pop()
            result = fold_transpose(node)
            if isinstance(result, Decline):
                self.decline(result, node)
                continue
            modified = True
            work.extend(user for user, _ in result.uses() if _is_candidate(user))
        return PassResult(model, modified)


def _is_candidate(node: ir.Node) -> bool:
    return (
        node.op_type == "Transpose"
        and canonical_domain(node.domain) == STANDARD
        and bool(node.inputs)
        and node.inputs[0] is not None
        and node.inputs[0].is_initializer()
    )
