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
