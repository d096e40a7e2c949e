"""merge-reshapes: results checked against onnxruntime on the original graph."""

from __future__ import annotations

from collections import Counter

import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper

from qonnx_tools._ir import ir
from qonnx_tools.executor import Executor
from qonnx_tools.passes import make_pass, run_passes
from qonnx_tools.testing import make_proto

F = TensorProto.FLOAT


def ort_run(proto, feeds):
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds)))


def merged(proto):
    model = ir.serde.deserialize_model(proto)
    run_passes(model, "infer-shapes")
    result = make_pass("merge-reshapes")(model)
    return model, result.modified


def ops(model):
    return Counter(n.op_type for n in model.graph)


def check_against_ort(proto, model, feeds):
    want = ort_run(proto, feeds)
    got = Executor(model).run(feeds)
    assert got.keys() == want.keys()
    for name in want:
        np.testing.assert_array_equal(got[name], want[name])


def test_flatten_then_reshape_becomes_one_reshape():
    proto = make_proto(
        [helper.make_node("Flatten", ["x"], ["f"], axis=2), helper.make_node("Reshape", ["f", "s"], ["r"]),
         helper.make_node("Relu", ["r"], ["y"])],
        [("x", F, [2, 3, 4, 5])], [("y", F, None)], inits=[("s", np.array([2, -1], np.int64))],
    )
    model, modified = merged(proto)
    assert modified
    assert ops(model) == Counter({"Reshape": 1, "Relu": 1})
    (reshape,) = [n for n in model.graph if n.op_type == "Reshape"]
    assert reshape.inputs[0].name == "x"
    assert reshape.inputs[1].const_value.numpy().tolist() == [2, 60]
    check_against_ort(proto, model, {"x": np.arange(120, dtype=np.float32).reshape(2, 3, 4, 5)})


def test_chain_with_symbolic_batch_keeps_it_as_minus_one():
    proto = make_proto(
        [helper.make_node("Reshape", ["x", "s1"], ["a"]), helper.make_node("Reshape", ["a", "s2"], ["b"]),
         helper.make_node("Reshape", ["b", "s3"], ["y"])],
        [("x", F, ["N", 2, 6])], [("y", F, None)],
        inits=[("s1", np.array([0, 3, 4], np.int64)), ("s2", np.array([0, 12], np.int64)),
               ("s3", np.array([0, 2, 2, 3], np.int64))],
    )
    model, modified = merged(proto)
    assert modified
    assert ops(model) == Counter({"Reshape": 1})
    assert model.graph.outputs[0].name == "y"
    (reshape,) = model.graph
    assert reshape.inputs[1].const_value.numpy().tolist() == [-1, 2, 2, 3]
    check_against_ort(proto, model, {"x": np.arange(36, dtype=np.float32).reshape(3, 2, 6)})


def test_reshape_to_its_own_shape_is_removed_and_output_name_kept():
    proto = make_proto(
        [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Reshape", ["r", "s"], ["y"])],
        [("x", F, [4, 5])], [("y", F, None)], inits=[("s", np.array([4, 5], np.int64))],
    )
    model, modified = merged(proto)
    assert modified
    assert ops(model) == Counter({"Relu": 1})
    assert model.graph.outputs[0].name == "y"
    check_against_ort(proto, model, {"x": np.linspace(-1, 1, 20, dtype=np.float32).reshape(4, 5)})


def test_first_reshape_with_other_readers_is_not_merged():
    proto = make_proto(
        [helper.make_node("Reshape", ["x", "s1"], ["a"]), helper.make_node("Reshape", ["a", "s2"], ["b"]),
         helper.make_node("Relu", ["a"], ["c"])],
        [("x", F, [2, 6])], [("b", F, None), ("c", F, None)],
        inits=[("s1", np.array([3, 4], np.int64)), ("s2", np.array([12], np.int64))],
    )
    model, modified = merged(proto)
    assert not modified
    assert ops(model) == Counter({"Reshape": 2, "Relu": 1})


def test_unknown_output_shape_is_left_alone():
    proto = make_proto(
        [helper.make_node("Reshape", ["x", "s1"], ["a"]), helper.make_node("Reshape", ["a", "t"], ["y"])],
        [("x", F, [2, 6]), ("t", TensorProto.INT64, [2])], [("y", F, None)],
        inits=[("s1", np.array([3, 4], np.int64))],
    )
    model, modified = merged(proto)
    assert not modified
    assert ops(model) == Counter({"Reshape": 2})


def test_two_symbolic_dims_are_left_alone():
    proto = make_proto(
        [helper.make_node("Reshape", ["x", "s1"], ["a"]), helper.make_node("Reshape", ["a", "s2"], ["y"])],
        [("x", F, ["N", "M", 6])], [("y", F, None)],
        inits=[("s1", np.array([0, 0, 3, 2], np.int64)), ("s2", np.array([0, 0, 6], np.int64))],
    )
    model, modified = merged(proto)
    assert [tuple(d if isinstance(d, int) else d.value for d in model.graph.outputs[0].shape)] == [("N", "M", 6)]
    assert not modified  # (N, M, 6) cannot be written as one Reshape target without 0s tied to the input
    assert ops(model) == Counter({"Reshape": 2})
