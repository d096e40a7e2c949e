"""move-transpose-into-weight-quant: Transpose(Quant(W)) -> Quant(W^T), exact; declines when W has other readers."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper

from qonnx_tools._ir import ir
from qonnx_tools.domains import QONNX
from qonnx_tools.executor import execute
from qonnx_tools.passes.move_transpose_into_weight_quant import MoveTransposeIntoWeightQuant
from qonnx_tools.testing import make_proto, op_types, quant_node

F = TensorProto.FLOAT
rng = np.random.default_rng(4)


def quantized_transposed_weight(scale_shape=(5, 1), extra_reader=False):
    """MatMul(x, Transpose(Quant(W (5, 4), scale per output row, 0, 4 bits)))."""
    w = rng.standard_normal((5, 4)).astype(np.float32)
    scale = (rng.uniform(0.05, 0.2, scale_shape)).astype(np.float32)
    nodes = [
        quant_node("W", "s", "z", "b", "Wq", name="q"),
        helper.make_node("Transpose", ["Wq"], ["Wt"], name="t", perm=[1, 0]),
        helper.make_node("MatMul", ["x", "Wt"], ["y"], name="mm"),
    ]
    outputs = [("y", F, (3, 5))]
    if extra_reader:
        nodes.append(helper.make_node("Relu", ["Wq"], ["r"], name="relu"))
        outputs.append(("r", F, (5, 4)))
    inits = [("W", w), ("s", scale), ("z", np.zeros((), np.float32)), ("b", np.array(4.0, np.float32))]
    proto = make_proto(nodes, [("x", F, (3, 4))], outputs, inits, extra_opsets={QONNX: 1})
    return proto


@pytest.mark.parametrize("scale_shape", [(5, 1), (), (1, 4), (4,)])
def test_transpose_moves_into_weight_quant(scale_shape):
    proto = quantized_transposed_weight(scale_shape)
    model = ir.from_proto(proto)
    p = MoveTransposeIntoWeightQuant()
    assert p(model).modified
    assert op_types(model) == ["Quant", "MatMul"]
    quant = model.graph[0]
    assert tuple(quant.inputs[0].shape) == (4, 5) and set(model.graph.initializers) == {v.name for v in quant.inputs}
    feeds = {"x": rng.standard_normal((3, 4)).astype(np.float32)}
    before = execute(ir.from_proto(proto), feeds)["y"]
    np.testing.assert_array_equal(execute(model, feeds)["y"], before)  # quantization is elementwise: exact
    assert not p(model).modified


def test_transpose_into_weight_quant_declines_with_other_readers():
    model = ir.from_proto(quantized_transposed_weight(extra_reader=True))
    p = MoveTransposeIntoWeightQuant()
    assert not p(model).modified
    assert p.declined == ["node 't' (Transpose): the quantized weight has other readers"]
