"""name-nodes: unique node and value names (existing unique names kept), graph inputs/outputs untouched."""

from __future__ import annotations

import onnx
import pytest
from onnx import TensorProto, helper

from qonnx_tools._ir import ir
from qonnx_tools.errors import BadInputError
from qonnx_tools.testing import make_model, output_names, run_pass, serialized

F = TensorProto.FLOAT


def _unnamed_model():
    x = ir.Value(name="x", shape=ir.Shape([2]), type=ir.TensorType(ir.DataType.FLOAT))
    relu = ir.Node("", "Relu", [x])
    neg = ir.Node("", "Neg", [relu.outputs[0]], name="/block/neg")
    relu2 = ir.Node("", "Relu", [neg.outputs[0]], name="/block/neg")  # duplicate name
    relu3 = ir.Node("", "Relu", [relu2.outputs[0]], name="Relu_0")  # takes the name an unnamed Relu would get
    relu3.outputs[0].name = "y"
    relu3.outputs[0].type, relu3.outputs[0].shape = x.type, x.shape
    graph = ir.Graph([x], [relu3.outputs[0]], nodes=[relu, neg, relu2, relu3], opset_imports={"": 13}, name="g")
    relu.name = None  # onnx_ir names what is added to a graph; undo that
    for node in (relu, neg, relu2):
        node.outputs[0].name = None
    return ir.Model(graph, ir_version=8)


def test_name_nodes_keeps_unique_names_and_names_the_rest():
    model = _unnamed_model()
    assert run_pass("name-nodes", model).modified
    assert [n.name for n in model.graph] == ["Relu_1", "/block/neg", "Relu_2", "Relu_0"]
    names = [v.name for n in model.graph for v in n.outputs]
    assert all(names) and len(set(names)) == len(names) and names[-1] == "y"
    assert names[0] == "Relu_1_out0"
    assert [v.name for v in model.graph.inputs] == ["x"] and output_names(model) == ["y"]
    onnx.checker.check_model(ir.to_proto(model), full_check=True)
    before = serialized(model)
    assert not run_pass("name-nodes", model).modified
    assert serialized(model) == before


def test_name_nodes_rename_all_is_positional():
    model = _unnamed_model()
    assert run_pass("name-nodes", model, rename_all=True).modified
    assert [n.name for n in model.graph] == ["Relu_0", "Neg_0", "Relu_1", "Relu_2"]
    assert not run_pass("name-nodes", model, rename_all=True).modified


def test_name_nodes_rejects_clashing_interface_names():
    nodes = [helper.make_node("Relu", ["x"], ["y"])]
    model = make_model(nodes, [("x", F, [2])], [("y", F, [2])])
    list(model.graph)[0].outputs[0].name = "x"
    with pytest.raises(BadInputError):
        run_pass("name-nodes", model)
