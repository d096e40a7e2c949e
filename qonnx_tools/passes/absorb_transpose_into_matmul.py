"""absorb-transpose-into-matmul: ``MatMul(Flatten(Transpose(x, to NCHW)), W)`` -> ``MatMul(Flatten(x), W')``.

After a channels-last conversion the feature map leaves the last conv region as
NHWC and goes back to NCHW only to be flattened for a dense layer. Flattening
the NHWC map directly reads the same numbers in another order, so permuting the
rows of the constant weight W to that order gives identical products with one
Transpose less (hls4ml: a Transpose before a Flatten triggers a weight rewrite in
its own optimizer that loses the quantization information the next pass needs).

W may be an initializer or an IntQuant/BipolarQuant of one; quantizer parameters
that vary per row are permuted like the rows. Exact: the sum over a row of the
product is over the same terms (float summation order is the MatMul kernel's,
which receives the same terms in a different order: results may differ in the
last ulp for float weights; integer-valued quantized products are exact).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qonnx_tools._ir import ir
from qonnx_tools.constants import constant_array
from qonnx_tools.decline import Decline
from qonnx_tools.domains import STANDARD, canonical_domain
from qonnx_tools.ops.channels_last import to_channels_first
from qonnx_tools.passes._rewrite import all_value_names, quantizer_of_constants, replace_constant_input
from qonnx_tools.passes.base import PassResult, QonnxPass

#: Not a candidate at all (most Transposes): not reported as a decline.
_NOT_TO_NCHW = "not a channels-last -> channels-first Transpose"

def _single_user(value: ir.Value) -> ir.Node | None:
    uses = list(value.uses())
    if len(uses) != 1 or value.is_graph_output():
        return None
    return uses[0][0]


def _flattens_to_2d(node: ir.Node) -> bool:
    if canonical_domain(node.domain) != STANDARD:
        return False
    if node.op_type == "Flatten":
        return node.attributes.get_int("axis", 1) == 1
    if node.op_type == "Reshape" and len(node.inputs) > 1:
        shape = constant_array(node.inputs[1])
        out = node.outputs[0].shape
        return shape is not None and shape.size == 2 and out is not None and len(out) == 2
    return False


def absorb(transpose: ir.Node, used: set[str]) -> Decline | None:
    """Rewrite one Transpose -> Flatten -> MatMul chain (new names unique in ``used``); None when done, else why not."""
    x = transpose.inputs[0]
    if x is None or x.shape is None or any(not isinstance(d, int) for d in x.shape[1:]):
        return Decline("input shape unknown")
    rank = len(x.shape)
    perm = transpose.attributes.get_ints("perm")
    if rank < 3 or perm is None or tuple(perm) != to_channels_first(rank):
        return Decline(_NOT_TO_NCHW)
    flatten = _single_user(transpose.outputs[0])
    if flatten is None or not _flattens_to_2d(flatten):
        return Decline("not read by one Flatten to (N, features)")
    matmul = _single_user(flatten.outputs[0])
    if matmul is None or matmul.op_type != "MatMul" or matmul.inputs[0] is not flatten.outputs[0]:
        return Decline("the flattened tensor is not the left operand of one MatMul")
    rows = _row_constants(matmul)
    if isinstance(rows, Decline):
        return rows
    spatial_last = tuple(x.shape[1:])  # (*spatial, C)
    order = np.arange(int(np.prod(spatial_last))).reshape(
        [spatial_last[-1], *spatial_last[:-1]]  # NCHW flatten index of every element...
    ).transpose([*range(1, rank - 1), 0]).reshape(-1)  # ...listed in NHWC order
    for holder, index in rows:
        value = holder.inputs[index]
        array = np.asarray(value.const_value.numpy())
        if array.ndim == 2 and array.shape[0] == order.size:
            replace_constant_input(holder, index, array[order], f"{value.name}_nhwc", used)
    flatten.replace_input_with(0, x)
    transpose.graph.remove(transpose, safe=True)
    return None


def _row_constants(matmul: ir.Node) -> list[tuple[ir.Node, int]] | Decline:
    """(reading node, input index) of every constant whose rows follow W's rows: W itself, or the
    inputs of the quantizer computing W."""
    w = matmul.inputs[1] if len(matmul.inputs) > 1 else None
    if w is not None and w.is_initializer() and w.const_value is not None and not w.is_graph_input():
        return [(matmul, 1)]
    quant = quantizer_of_constants(w)
    if isinstance(quant, Decline):
        return Decline(f"the weight is neither an initializer nor a quantized one ({quant.reason})", matmul)
    return [(quant, i) for i in range(len(quant.inputs))]


@dataclass
class AbsorbTransposeIntoMatMul(QonnxPass, name="absorb-transpose-into-matmul"):
    """MatMul(Flatten(Transpose(x, NHWC->NCHW)), W) -> MatMul(Flatten(x), W with rows permuted); W an
    initializer or a quantizer of one"""

    def call(self, model: ir.Model) -> PassResult:
        used = all_value_names(model)
        transposes = [n for n in model.graph if n.op_type == "Transpose" and canonical_domain(n.domain) == STANDARD]
        modified = self.rewrite_each(transposes, lambda node: absorb(node, used), quiet=[_NOT_TO_NCHW])
        return PassResult(model, modified)
