"""dedupe-initializers: equal dtype, shape and bytes merge (up to size_limit); graph inputs never merge.

Numerics come from onnxruntime on the deduplicated model against a NumPy formula.
"""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper

from qonnx_tools.runtime import run_onnxruntime
from qonnx_tools.testing import make_model, run_pass

F = TensorProto.FLOAT


def test_dedupe_initializers():
    a = np.arange(4, dtype=np.float32)
    nodes = [helper.make_node("Add", ["x", "a"], ["t"]), helper.make_node("Add", ["t", "b"], ["u"]),
             helper.make_node("Add", ["u", "c"], ["v"]), helper.make_node("Add", ["v", "d"], ["y"])]
    nodes[3:] = [helper.make_node("Cast", ["d"], ["df"], to=F), helper.make_node("Add", ["v", "df"], ["y"])]
    inits = [("a", a), ("b", a.copy()), ("c", a.copy()), ("d", a.astype(np.int64))]
    model = make_model(nodes, [("x", F, [4])], [("y", F, [4])], inits)
    assert run_pass("dedupe-initializers", model).modified
    assert set(model.graph.initializers) == {"a", "d"}  # same bytes but another dtype is not merged
    np.testing.assert_array_equal(run_onnxruntime(model, {"x": a})["y"], 4 * a + a)
    assert not run_pass("dedupe-initializers", model).modified


def test_dedupe_respects_size_limit_and_graph_inputs():
    a = np.ones(10, np.float32)
    nodes = [helper.make_node("Add", ["x", "a"], ["t"]), helper.make_node("Add", ["t", "b"], ["u"]),
             helper.make_node("Add", ["u", "c"], ["y"])]
    model = make_model(nodes, [("x", F, [10])], [("y", F, [10])], [("a", a), ("b", a), ("c", a)],
                       extra_inputs=[helper.make_tensor_value_info("c", F, [10])])
    assert not run_pass("dedupe-initializers", model, size_limit=9).modified
    assert run_pass("dedupe-initializers", model, size_limit=10).modified
    assert set(model.graph.initializers) == {"a", "c"}  # c is a graph input: never merged
