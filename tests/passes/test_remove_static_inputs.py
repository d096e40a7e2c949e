"""remove-static-inputs: initializers listed as graph inputs stop being graph inputs."""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper

from qonnx_tools.testing import make_model, run_pass

F = TensorProto.FLOAT


def test_remove_static_inputs():
    nodes = [helper.make_node("Add", ["x", "w"], ["y"])]
    model = make_model(nodes, [("x", F, [2])], [("y", F, [2])], [("w", np.ones(2, np.float32))],
                       extra_inputs=[helper.make_tensor_value_info("w", F, [2])])
    assert run_pass("remove-static-inputs", model).modified
    assert [v.name for v in model.graph.inputs] == ["x"] and "w" in model.graph.initializers
    assert not run_pass("remove-static-inputs", model).modified


def test_an_ir3_model_is_raised_to_ir4_which_allows_initializers_that_are_not_inputs():
    """IR 3 required every initializer to be a graph input (the onnx wheel's light_*.onnx models are
    IR 3); onnx's checker and version converter refuse an IR 3 model whose initializer is not one."""
    import onnx

    from qonnx_tools._ir import ir

    nodes = [helper.make_node("Add", ["x", "w"], ["y"])]
    model = make_model(nodes, [("x", F, [2])], [("y", F, [2])], [("w", np.ones(2, np.float32))],
                       extra_inputs=[helper.make_tensor_value_info("w", F, [2])])
    model.ir_version = 3
    assert run_pass("remove-static-inputs", model).modified
    assert model.ir_version == 4
    onnx.checker.check_model(ir.to_proto(model))  # IR 3 here: "initializer w is not in graph inputs"
