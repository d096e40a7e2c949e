"""remove-dead: unused nodes, initializers, optional outputs and stale value_info go; graph inputs stay."""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper

from qonnx_tools._ir import ir
from qonnx_tools.testing import make_model, op_types, run_pass

F = TensorProto.FLOAT


def test_remove_dead_nodes_initializers_and_stale_value_info():
    nodes = [
        helper.make_node("Relu", ["x"], ["y"]),
        helper.make_node("Neg", ["x"], ["dead1"]),
        helper.make_node("Add", ["dead1", "w"], ["dead2"]),
    ]
    stale = helper.make_tensor_value_info("gone", F, [7])
    model = make_model(nodes, [("x", F, [2])], [("y", F, [2])], [("w", np.ones(2, np.float32)), ("unused", np.zeros(3))],
                       value_info=[stale, helper.make_tensor_value_info("dead2", F, [2])])
    assert run_pass("remove-dead", model).modified
    assert op_types(model) == ["Relu"] and not model.graph.initializers
    proto = ir.to_proto(model)
    assert [v.name for v in proto.graph.value_info] == []
    assert not run_pass("remove-dead", model).modified


def test_remove_dead_reports_trimmed_optional_outputs():
    nodes = [helper.make_node("Dropout", ["x"], ["y", "mask"])]
    model = make_model(nodes, [("x", F, [2])], [("y", F, [2])])
    assert run_pass("remove-dead", model).modified  # nothing removed but the unused mask output
    assert len(list(model.graph)[0].outputs) == 1
    assert not run_pass("remove-dead", model).modified


def test_remove_dead_keeps_graph_inputs():
    model = make_model([helper.make_node("Relu", ["x"], ["y"])], [("x", F, [2]), ("unused_in", F, [2])], [("y", F, [2])])
    assert not run_pass("remove-dead", model).modified
    assert [v.name for v in model.graph.inputs] == ["x", "unused_in"]
