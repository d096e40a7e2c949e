"""fold-constants on handmade graphs: what folds, what stays, values, dtypes, names, honesty.

Expected values come from NumPy formulas written here and from onnxruntime
running the unfolded model -- not from the kernels fold-constants itself calls.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from qonnx_tools._ir import ir
from qonnx_tools.annotations import get_datatype, set_datatype
from qonnx_tools.datatypes import DataType
from qonnx_tools.domains import QONNX
from qonnx_tools.executor import Executor
from qonnx_tools.passes import make_pass, registered_passes
from qonnx_tools.passes.fold_constants import FoldConstants
from qonnx_tools.runtime import run_onnxruntime
from qonnx_tools import testing

F = TensorProto.FLOAT


def make_model(nodes, inputs, outputs, inits=(), opset=13, qonnx=False, graph_inputs_extra=()):
    extra_opsets = {QONNX: 1} if qonnx else None
    return testing.make_model(
        nodes, inputs, outputs, inits, opset=opset, extra_inputs=graph_inputs_extra, extra_opsets=extra_opsets
    )


def ops(model):
    return [n.op_type for n in model.graph]


def fold(model, **options):
    return FoldConstants(**options)(model)


def init_array(model, name):
    return model.graph.initializers[name].const_value.numpy()


def test_registered_with_summary():
    cls = registered_passes()["fold-constants"]
    assert cls is FoldConstants and cls.summary
    assert make_pass("fold-constants", {"max_bytes": "10", "fold_quantizers": "true"}) == FoldConstants(True, 10)


def test_chain_folds_in_one_run_and_inputs_disappear():
    a = np.arange(6, dtype=np.float32).reshape(2, 3) - 2.5
    c = np.float32(0.5)
    nodes = [
        helper.make_node("Constant", [], ["c"], value=numpy_helper.from_array(np.asarray(c))),
        helper.make_node("Add", ["a", "a"], ["a2"]),
        helper.make_node("Mul", ["a2", "c"], ["a3"]),
        helper.make_node("Relu", ["a3"], ["a4"]),
        helper.make_node("Add", ["x", "a4"], ["y"]),
    ]
    model = make_model(nodes, [("x", F, [2, 3])], [("y", F, [2, 3])], [("a", a)])
    x = np.random.default_rng(0).standard_normal((2, 3)).astype(np.float32)
    before = run_onnxruntime(model, {"x": x})["y"]

    result = fold(model)

    assert result.modified
    assert ops(model) == ["Add"]
    assert set(model.graph.initializers) == {"a4"}  # named after the folded value; a and c gone
    np.testing.assert_array_equal(init_array(model, "a4"), np.maximum((a + a) * c, 0))
    assert init_array(model, "a4").dtype == np.float32
    np.testing.assert_array_equal(Executor(model).run({"x": x})["y"], before)
    np.testing.assert_array_equal(run_onnxruntime(model, {"x": x})["y"], before)
    assert not fold(model).modified


def test_graph_input_initializers_are_not_constant():
    """A weight listed as a graph input can be overridden by the caller: it is not folded."""
    w = np.ones((2,), np.float32)
    nodes = [helper.make_node("Neg", ["w"], ["nw"]), helper.make_node("Add", ["x", "nw"], ["y"])]
    extra = [helper.make_tensor_value_info("w", F, [2])]
    model = make_model(nodes, [("x", F, [2])], [("y", F, [2])], [("w", w)], graph_inputs_extra=extra)
    assert not fold(model).modified
    assert ops(model) == ["Neg", "Add"]


def test_multi_output_split_folds_every_output():
    data = np.arange(6, dtype=np.float32)
    nodes = [
        helper.make_node("Split", ["d", "sizes"], ["s0", "s1", "s2"], axis=0),
        helper.make_node("Concat", ["s2", "s0", "s1"], ["cat"], axis=0),
        helper.make_node("Add", ["x", "cat"], ["y"]),
        helper.make_node("Mul", ["x", "s1"], ["z"]),
    ]
    model = make_model(
        nodes,
        [("x", F, [6])],
        [("y", F, [6]), ("z", F, [3])],
        [("d", data), ("sizes", np.array([2, 3, 1], np.int64))],
    )
    assert fold(model).modified
    assert ops(model) == ["Add", "Mul"]
    np.testing.assert_array_equal(init_array(model, "cat"), np.concatenate([data[5:], data[:2], data[2:5]]))
    np.testing.assert_array_equal(init_array(model, "s1"), data[2:5])
    assert "s0" not in model.graph.initializers and "s2" not in model.graph.initializers


def test_multi_output_topk_keeps_index_dtype():
    values = np.array([[3.0, 1.0, 4.0, 1.5]], np.float32)
    nodes = [
        helper.make_node("TopK", ["v", "k"], ["top", "idx"], axis=1),
        helper.make_node("Cast", ["idx"], ["idxf"], to=F),
        helper.make_node("Add", ["x", "top"], ["y"]),
        helper.make_node("Add", ["x", "idxf"], ["z"]),
    ]
    model = make_model(
        nodes, [("x", F, [1, 2])], [("y", F, [1, 2]), ("z", F, [1, 2])], [("v", values), ("k", np.array([2], np.int64))]
    )
    assert fold(model).modified
    np.testing.assert_array_equal(init_array(model, "top"), [[4.0, 3.0]])
    np.testing.assert_array_equal(init_array(model, "idxf"), [[2.0, 0.0]])
    assert "idx" not in model.graph.initializers  # only used by the folded Cast


def test_dtypes_are_exact():
    nodes = [
        helper.make_node("Cast", ["i"], ["h"], to=TensorProto.FLOAT16),
        helper.make_node("Shape", ["i"], ["shape"]),
        helper.make_node("Add", ["x", "h"], ["y"]),
        helper.make_node("Reshape", ["x", "shape"], ["z"]),
    ]
    model = make_model(
        nodes,
        [("x", TensorProto.FLOAT16, [2, 2])],
        [("y", TensorProto.FLOAT16, [2, 2]), ("z", TensorProto.FLOAT16, [2, 2])],
        [("i", np.array([[1, 2], [3, 1000]], np.int32))],
    )
    fold(model)
    h = model.graph.initializers["h"]
    assert h.dtype == ir.DataType.FLOAT16 and init_array(model, "h").dtype == np.float16
    np.testing.assert_array_equal(init_array(model, "h"), np.array([[1, 2], [3, 1000]], np.int32).astype(np.float16))
    assert init_array(model, "shape").dtype == np.int64
    np.testing.assert_array_equal(init_array(model, "shape"), [2, 2])


def test_quantizers_not_folded_by_default():
    w = np.array([[0.31, -0.74], [1.26, -0.05]], np.float32)
    nodes = [
        helper.make_node("Quant", ["w", "s", "zp", "b"], ["wq"], domain=QONNX, signed=1, narrow=0, rounding_mode="ROUND"),
        helper.make_node("BipolarQuant", ["w", "s"], ["wb"], domain=QONNX),
        helper.make_node("MatMul", ["x", "wq"], ["y"]),
        helper.make_node("MatMul", ["x", "wb"], ["z"]),
    ]
    inits = [("w", w), ("s", np.float32(0.25)), ("zp", np.float32(0)), ("b", np.float32(4))]
    model = make_model(nodes, [("x", F, [1, 2])], [("y", F, [1, 2]), ("z", F, [1, 2])], inits, qonnx=True)
    assert not fold(model).modified
    assert ops(model) == ["Quant", "BipolarQuant", "MatMul", "MatMul"]


def test_quantizers_folded_with_option_match_formula():
    w = np.array([[0.31, -0.74, 2.6], [1.26, -0.05, -3.9]], np.float32)
    scale = np.array([0.25], np.float32)
    nodes = [
        helper.make_node("Quant", ["w", "s", "zp", "b"], ["wq"], domain=QONNX, signed=1, narrow=1, rounding_mode="ROUND"),
        helper.make_node("BipolarQuant", ["w", "s"], ["wb"], domain=QONNX),
        helper.make_node("Add", ["x", "wq"], ["y"]),
        helper.make_node("Add", ["x", "wb"], ["z"]),
    ]
    inits = [("w", w), ("s", scale), ("zp", np.float32(0)), ("b", np.float32(4))]
    model = make_model(nodes, [("x", F, [2, 3])], [("y", F, [2, 3]), ("z", F, [2, 3])], inits, qonnx=True)

    assert fold(model, fold_quantizers=True).modified
    assert ops(model) == ["Add", "Add"]
    # 4-bit signed narrow: integers -7..7; round half to even
    expected_q = np.clip(np.round(w / scale), -7, 7) * scale
    np.testing.assert_array_equal(init_array(model, "wq"), expected_q.astype(np.float32))
    np.testing.assert_array_equal(init_array(model, "wb"), np.where(w >= 0, 1.0, -1.0).astype(np.float32) * scale)
    assert init_array(model, "wq").dtype == np.float32


def test_qdq_weights_stay_quantized_by_default():
    nodes = [
        helper.make_node("DequantizeLinear", ["wi", "s", "zp"], ["w"]),
        helper.make_node("Add", ["x", "w"], ["y"]),
    ]
    inits = [("wi", np.array([-3, 5], np.int8)), ("s", np.float32(0.5)), ("zp", np.int8(0))]
    model = make_model(nodes, [("x", F, [2])], [("y", F, [2])], inits)
    assert not fold(model).modified
    assert fold(model, fold_quantizers=True).modified
    np.testing.assert_array_equal(init_array(model, "w"), np.array([-1.5, 2.5], np.float32))


def test_max_bytes_is_respected():
    nodes = [helper.make_node("Tile", ["a", "reps"], ["big"]), helper.make_node("Add", ["x", "big"], ["y"])]
    inits = [("a", np.ones((1, 4), np.float32)), ("reps", np.array([100, 1], np.int64))]
    model = make_model(nodes, [("x", F, [100, 4])], [("y", F, [100, 4])], inits)
    assert not fold(model, max_bytes=100 * 4 * 4 - 1).modified
    assert ops(model) == ["Tile", "Add"]
    assert fold(model, max_bytes=100 * 4 * 4).modified
    assert ops(model) == ["Add"]


def test_graph_output_keeps_its_name():
    nodes = [helper.make_node("Neg", ["a"], ["y"]), helper.make_node("Relu", ["x"], ["z"])]
    model = make_model(nodes, [("x", F, [2])], [("y", F, [2]), ("z", F, [2])], [("a", np.array([1, -2], np.float32))])
    assert fold(model).modified
    assert [v.name for v in model.graph.outputs] == ["y", "z"]
    assert model.graph.outputs[0].is_initializer()
    x = np.array([-1, 1], np.float32)
    np.testing.assert_array_equal(Executor(model).run({"x": x})["y"], [-1, 2])
    np.testing.assert_array_equal(run_onnxruntime(model, {"x": x})["y"], [-1, 2])
    onnx.checker.check_model(ir.to_proto(model), full_check=True)


def test_skips_random_dropout_subgraphs_unknown_ops_and_failing_kernels():
    then_graph = helper.make_graph(
        [helper.make_node("Identity", ["a"], ["t"])], "then", [], [helper.make_tensor_value_info("t", F, [2])]
    )
    nodes = [
        helper.make_node("RandomNormalLike", ["a"], ["r"]),
        helper.make_node("Dropout", ["a"], ["d"]),
        helper.make_node("If", ["cond"], ["iff"], then_branch=then_graph, else_branch=then_graph),
        helper.make_node("Mystery", ["a"], ["m"], domain="example.custom"),
        helper.make_node("Reshape", ["a", "badshape"], ["bad"]),
        helper.make_node("Sum", ["x", "r", "d", "iff", "m", "bad"], ["y"]),
    ]
    inits = [("a", np.array([1, 2], np.float32)), ("cond", np.array(True)), ("badshape", np.array([3], np.int64))]
    proto_model = make_model(nodes, [("x", F, [2])], [("y", F, [2])], inits)
    proto_model.opset_imports["example.custom"] = 1
    assert not fold(proto_model).modified
    assert len(proto_model.graph) == 6


def test_annotations_move_to_the_initializer():
    nodes = [helper.make_node("Neg", ["a"], ["na"]), helper.make_node("Add", ["x", "na"], ["y"])]
    model = make_model(nodes, [("x", F, [2])], [("y", F, [2])], [("a", np.array([1, -2], np.float32))])
    (neg,) = [n for n in model.graph if n.op_type == "Neg"]
    set_datatype(neg.outputs[0], DataType.parse("INT2"))
    fold(model)
    assert get_datatype(model.graph.initializers["na"]) == DataType.parse("INT2")


def test_folded_model_matches_onnxruntime_on_a_constant_subgraph():
    rng = np.random.default_rng(1)
    w = rng.standard_normal((4, 3)).astype(np.float32)
    b = rng.standard_normal((4,)).astype(np.float32)
    nodes = [
        helper.make_node("Transpose", ["w"], ["wt"], perm=[1, 0]),
        helper.make_node("Mul", ["wt", "two"], ["wt2"]),
        helper.make_node("Sqrt", ["absb"], ["sb"]),
        helper.make_node("Abs", ["b"], ["absb"]),
        helper.make_node("Unsqueeze", ["sb", "ax"], ["sbu"]),
        helper.make_node("MatMul", ["x", "wt2"], ["h"]),
        helper.make_node("Add", ["h", "sbu"], ["y"]),
    ]
    inits = [("w", w), ("b", b), ("two", np.float32(2)), ("ax", np.array([0], np.int64))]
    proto = helper.make_model(
        helper.make_graph(
            nodes,
            "g",
            [helper.make_tensor_value_info("x", F, [2, 3])],
            [helper.make_tensor_value_info("y", F, [2, 4])],
            initializer=[numpy_helper.from_array(np.asarray(a), n) for n, a in inits],
        ),
        opset_imports=[helper.make_opsetid("", 13)],
    )
    model = ir.from_proto(proto)
    model.graph.sort()
    x = rng.standard_normal((2, 3)).astype(np.float32)
    before = run_onnxruntime(model, {"x": x})["y"]
    assert fold(model).modified
    assert ops(model) == ["MatMul", "Add"]
    np.testing.assert_allclose(run_onnxruntime(model, {"x": x})["y"], before, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(Executor(model).run({"x": x})["y"], before, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("max_bytes", [0, 64 * 1024 * 1024])
def test_modified_is_honest_on_a_model_without_constants(max_bytes):
    model = make_model([helper.make_node("Relu", ["x"], ["y"])], [("x", F, [2])], [("y", F, [2])])
    before = ir.to_proto(model).SerializeToString()
    assert not fold(model, max_bytes=max_bytes).modified
    assert ir.to_proto(model).SerializeToString() == before


# -- Shape/Size of static shapes ----------------------------------------------------------


def flatten_chain(batch):
    """The TFC exporter's flatten: Shape -> Gather(0) -> Unsqueeze -> Concat([., -1]) -> Reshape."""
    nodes = [
        helper.make_node("Shape", ["x"], ["shape"]),
        helper.make_node("Gather", ["shape", "zero"], ["batch"], axis=0),
        helper.make_node("Unsqueeze", ["batch", "axes"], ["batch1"]),
        helper.make_node("Concat", ["batch1", "minus1"], ["target"], axis=0),
        helper.make_node("Reshape", ["x", "target"], ["y"]),
        helper.make_node("Size", ["x"], ["n"]),
        helper.make_node("Shape", ["x"], ["tail"], start=-2, end=10),
    ]
    inits = [("zero", np.array(0, np.int64)), ("axes", np.array([0], np.int64)), ("minus1", np.array([-1], np.int64))]
    i64 = TensorProto.INT64
    return make_model(nodes, [("x", F, [batch, 1, 4, 7])], [("y", F, None), ("n", i64, None), ("tail", i64, None)],
                      inits, opset=15)


def test_static_shape_chain_folds_to_one_reshape_target_matching_onnxruntime():
    model = flatten_chain(2)
    x = np.arange(56, dtype=np.float32).reshape(2, 1, 4, 7)
    want = run_onnxruntime(flatten_chain(2), {"x": x})
    assert fold(model).modified
    assert ops(model) == ["Reshape"]
    got = Executor(model).run({"x": x})
    assert init_array(model, "target").tolist() == [2, -1]
    for name in ("y", "n", "tail"):
        np.testing.assert_array_equal(got[name], want[name])


def test_symbolic_shape_or_option_off_does_not_fold_shape():
    symbolic = flatten_chain("N")
    assert not fold(symbolic).modified
    static = flatten_chain(2)
    assert not fold(static, static_shapes=False).modified
    assert ops(static).count("Shape") == 2
