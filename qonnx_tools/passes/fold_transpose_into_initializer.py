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
from typing import ClassVar

import numpy as np

from qonnx_tools._ir import ir
from qonnx_tools.decline import Decline
from qonnx_tools.domains import STANDARD, canonical_domain
from qonnx_tools.passes._rewrite import all_value_names, quantizer_of_constants, replace_constant_input
from qonnx_tools.passes.base import PassResult, QonnxPass, register_pass


def _perm(node: ir.Node, rank: int) -> list[int] | Decline:
    perm = node.attributes.get_ints("perm")
    if perm is None:
        return list(range(rank))[::-1]
    perm = [int(p) for p in perm]
    if sorted(perm) != list(range(rank)):
        return Decline(f"perm {perm} is not a permutation of rank {rank}")
    return perm


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
    perm = _perm(node, array.ndim)
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
class FoldTransposeIntoInitializer(QonnxPass):
    """Transpose of a constant initializer -> the transposed initializer (see the module docstring)."""

    name: ClassVar[str] = "fold-transpose-into-initializer"
    summary: ClassVar[str] = (
        "Transpose of an initializer (not a graph input) -> transposed initializer "
        "(in place when the Transpose was its only consumer)"
    )

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


# -- Transpose(quantizer(W)) -> quantizer(W^T) --------------------------------------------------------

def move_transpose_into_quantizer(node: ir.Node, used: set[str]) -> ir.Node | Decline:
    """``Transpose(Q(W, params))`` -> ``Q(W^T, params^T)`` for constant W and params; else say why not.

    Transposed copies are new initializers (names unique in ``used``); the originals go when
    nothing else reads them. Exact: the quantizer is elementwise."""
    quant = quantizer_of_constants(node.inputs[0] if node.inputs else None)
    if isinstance(quant, Decline):
        return quant
    if node.outputs[0].is_graph_output():
        return Decline("the transposed weight is a graph output (its name must stay)")
    rank = len(quant.inputs[0].shape or ())
    perm = _perm(node, rank)
    if isinstance(perm, Decline):
        return perm
    moved: dict[int, np.ndarray] = {}
    for index, value in enumerate(quant.inputs):  # all checked before anything changes
        array = np.asarray(value.const_value.numpy())
        if array.ndim > rank:
            return Decline(f"parameter {value.name!r} has more dimensions than the weight", value)
        if array.ndim:
            moved[index] = np.transpose(array.reshape((1,) * (rank - array.ndim) + array.shape), perm)
    for index, array in moved.items():
        value = quant.inputs[index]
        if array.shape != tuple(value.const_value.shape) or not np.array_equal(array, value.const_value.numpy()):
            replace_constant_input(quant, index, array, f"{value.name}_t", used)
    qout, out = quant.outputs[0], node.outputs[0]
    qout.shape = out.shape
    out.replace_all_uses_with(qout, replace_graph_outputs=True)
    node.graph.remove(node, safe=True)
    return quant


@dataclass
class MoveTransposeIntoWeightQuant(QonnxPass):
    """Transpose of a quantized constant weight -> the quantizer applied to the transposed weight."""

    name: ClassVar[str] = "move-transpose-into-weight-quant"
    summary: ClassVar[str] = (
        "Transpose(IntQuant/BipolarQuant(W)) with W and the parameters initializers -> "
        "quantizer of W^T with parameters transposed alike (exact: quantizers are elementwise)"
    )

    def call(self, model: ir.Model) -> PassResult:
        used = all_value_names(model)
        candidates = [n for n in model.graph if n.op_type == "Transpose" and canonical_domain(n.domain) == STANDARD]
        modified = self.rewrite_each(candidates, lambda node: move_transpose_into_quantizer(node, used))
        return PassResult(model, modified)
