"""move-transpose-into-weight-quant: ``Transpose(Q(W, params))`` -> ``Q(W^T, params^T)``.

A Transpose of a quantized constant weight (``IntQuant``/``BipolarQuant`` whose
inputs are all initializers that are not graph inputs, and whose output nothing
else reads) goes into the quantizer: W and every parameter that is not a scalar
are transposed alike (parameters of lower rank are first aligned for
broadcasting). Exact: the quantizer is elementwise. The transposed copies are new
initializers; the originals go when nothing else reads them. A Transpose whose
output is a graph output stays (its name must stay).

Implementation: one-node rewrites through ``QonnxPass.rewrite_each`` (declines
collected per node).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qonnx_tools._ir import ir
from qonnx_tools.decline import Decline
from qonnx_tools.domains import STANDARD, canonical_domain
from qonnx_tools.passes._rewrite import (
    all_value_names,
    quantizer_of_constants,
    replace_constant_input,
    transpose_perm,
)
from qonnx_tools.passes.base import PassResult, QonnxPass


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
    perm = transpose_perm(node, rank)
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
class MoveTransposeIntoWeightQuant(QonnxPass, name="move-transpose-into-weight-quant"):
    """Transpose(IntQuant/BipolarQuant(W)) with W and the parameters initializers -> quantizer of W^T with
    parameters transposed alike (exact: quantizers are elementwise)"""

    def call(self, model: ir.Model) -> PassResult:
        used = all_value_names(model)
        candidates = [n for n in model.graph if n.op_type == "Transpose" and canonical_domain(n.domain) == STANDARD]
        modified = self.rewrite_each(candidates, lambda node: move_transpose_into_quantizer(node, used))
        return PassResult(model, modified)
