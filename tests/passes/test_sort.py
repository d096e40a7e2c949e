"""sort: nodes in topological order, and honest about an already sorted graph."""

from __future__ import annotations

from onnx import TensorProto, helper

from qonnx_tools._ir import ir
from qonnx_tools.testing import op_types, run_pass

F = TensorProto.FLOAT


def test_sort():
    nodes = [helper.make_node("Neg", ["r"], ["y"]), helper.make_node("Relu", ["x"], ["r"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", F, [2])],
                              [helper.make_tensor_value_info("y", F, [2])])
    model = ir.from_proto(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]))
    assert run_pass("sort", model).modified
    assert op_types(model) == ["Relu", "Neg"]
    assert not run_pass("sort", model).modified
