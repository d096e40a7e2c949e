"""fold-transpose-into-initializer: folding, sharing, declines, chains, graph outputs, honesty."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper

from qonnx_tools._ir import ir
from qonnx_tools.annotations import get_datatype, set_datatype
from qonnx_tools.datatypes import DataType
from qonnx_tools.passes import registered_passes
from qonnx_tools.passes.fold_transpose_into_initializer import FoldTransposeIntoInitializer
from qonnx_tools.testing import assert_bit_identical, make_proto, op_types

F = TensorProto.FLOAT
rng = np.random.default_rng(4)


def matmul_with_transposed_weight(perm=(1, 0), w_shape=(5, 4)):
    w = rng.standard_normal(w_shape).astype(np.float32)
    attrs = {} if perm is None else {"perm": list(perm)}
    nodes = [
        helper.make_node("Transpose", ["W"], ["Wt"], name="t", **attrs),
        helper.make_node("MatMul", ["x", "Wt"], ["y"]),
    ]
    return make_proto(nodes, [("x", F, (3, 4))], [("y", F, (3, 5))], [("W", w)]), w


def test_registered():
    assert registered_passes()["fold-transpose-into-initializer"] is FoldTransposeIntoInitializer
    assert FoldTransposeIntoInitializer.summary


@pytest.mark.parametrize("perm", [(1, 0), None])
def test_only_consumer_transposed_in_place(perm):
    proto, w = matmul_with_transposed_weight(perm)
    model = ir.from_proto(proto)
    p = FoldTransposeIntoInitializer()
    assert p(model).modified and p.declined == []
    assert op_types(model) == ["MatMul"]
    assert list(model.graph.initializers) == ["Wt"]
    wt = model.graph.initializers["Wt"]
    np.testing.assert_array_equal(wt.const_value.numpy(), w.T)
    assert wt.shape == ir.Shape([4, 5]) and wt.dtype == ir.DataType.FLOAT
    assert next(iter(model.graph)).inputs[1] is wt
    assert_bit_identical(proto, model, {"x": rng.standard_normal((3, 4)).astype(np.float32)})
    assert not FoldTransposeIntoInitializer()(model).modified


def test_rank_three_perm():
    w = rng.standard_normal((2, 3, 4)).astype(np.float32)
    nodes = [helper.make_node("Transpose", ["W"], ["Wt"], perm=[2, 0, 1]), helper.make_node("Add", ["x", "Wt"], ["y"])]
    proto = make_proto(nodes, [("x", F, (4, 2, 3))], [("y", F, (4, 2, 3))], [("W", w)])
    model = ir.from_proto(proto)
    assert FoldTransposeIntoInitializer()(model).modified
    np.testing.assert_array_equal(model.graph.initializers["Wt"].const_value.numpy(), np.transpose(w, (2, 0, 1)))
    assert_bit_identical(proto, model, {"x": rng.standard_normal((4, 2, 3)).astype(np.float32)})


def test_initializer_with_other_consumers_is_kept():
    w = rng.standard_normal((4, 4)).astype(np.float32)
    nodes = [
        helper.make_node("Transpose", ["W"], ["Wt"]),
        helper.make_node("MatMul", ["x", "Wt"], ["a"]),
        helper.make_node("MatMul", ["a", "W"], ["y"]),
    ]
    proto = make_proto(nodes, [("x", F, (2, 4))], [("y", F, (2, 4))], [("W", w)])
    model = ir.from_proto(proto)
    assert FoldTransposeIntoInitializer()(model).modified
    assert op_types(model) == ["MatMul", "MatMul"]
    assert sorted(model.graph.initializers) == ["W", "Wt"]
    assert_bit_identical(proto, model, {"x": rng.standard_normal((2, 4)).astype(np.float32)})


def test_two_transposes_of_one_initializer():
    w = rng.standard_normal((4, 4)).astype(np.float32)
    nodes = [
        helper.make_node("Transpose", ["W"], ["Wt"]),
        helper.make_node("Transpose", ["W"], ["Wid"], perm=[0, 1]),
        helper.make_node("MatMul", ["x", "Wt"], ["a"]),
        helper.make_node("MatMul", ["a", "Wid"], ["y"]),
    ]
    proto = make_proto(nodes, [("x", F, (2, 4))], [("y", F, (2, 4))], [("W", w)])
    model = ir.from_proto(proto)
    assert FoldTransposeIntoInitializer()(model).modified
    assert op_types(model) == ["MatMul", "MatMul"]
    assert sorted(model.graph.initializers) == ["Wid", "Wt"]
    assert_bit_identical(proto, model, {"x": rng.standard_normal((2, 4)).astype(np.float32)})


def test_chain_folds_in_one_run():
    w = rng.standard_normal((2, 3, 4)).astype(np.float32)
    nodes = [
        helper.make_node("Transpose", ["W"], ["W1"], perm=[1, 0, 2]),
        helper.make_node("Transpose", ["W1"], ["W2"], perm=[2, 0, 1]),
        helper.make_node("Add", ["x", "W2"], ["y"]),
    ]
    proto = make_proto(nodes, [("x", F, (4, 3, 2))], [("y", F, (4, 3, 2))], [("W", w)])
    model = ir.from_proto(proto)
    assert FoldTransposeIntoInitializer()(model).modified
    assert op_types(model) == ["Add"]
    assert list(model.graph.initializers) == ["W2"]
    assert not FoldTransposeIntoInitializer()(model).modified
    assert_bit_identical(proto, model, {"x": rng.standard_normal((4, 3, 2)).astype(np.float32)})


def test_graph_input_initializer_declines():
    w = rng.standard_normal((5, 4)).astype(np.float32)
    nodes = [helper.make_node("Transpose", ["W"], ["Wt"], name="t"), helper.make_node("MatMul", ["x", "Wt"], ["y"])]
    proto = make_proto(
        nodes,
        [("x", F, (3, 4))],
        [("y", F, (3, 5))],
        [("W", w)],
        extra_inputs=[helper.make_tensor_value_info("W", F, (5, 4))],
    )
    model = ir.from_proto(proto)
    p = FoldTransposeIntoInitializer()
    assert not p(model).modified
    assert op_types(model) == ["Transpose", "MatMul"]
    assert "remove-static-inputs" in p.declined[0]


def test_dynamic_transpose_untouched():
    nodes = [helper.make_node("Transpose", ["x"], ["y"])]
    proto = make_proto(nodes, [("x", F, (3, 4))], [("y", F, (4, 3))])
    model = ir.from_proto(proto)
    p = FoldTransposeIntoInitializer()
    assert not p(model).modified and p.declined == []


def test_graph_output_becomes_an_initializer_backed_output():
    w = rng.standard_normal((2, 3)).astype(np.float32)
    nodes = [helper.make_node("Transpose", ["W"], ["Wt"]), helper.make_node("Relu", ["x"], ["y"])]
    proto = make_proto(nodes, [("x", F, (2,))], [("y", F, (2,)), ("Wt", F, (3, 2))], [("W", w)])
    model = ir.from_proto(proto)
    assert FoldTransposeIntoInitializer()(model).modified
    assert [v.name for v in model.graph.outputs] == ["y", "Wt"]
    assert model.graph.outputs[1] is model.graph.initializers["Wt"]
    assert_bit_identical(proto, model, {"x": rng.standard_normal(2).astype(np.float32)})


def test_annotations_carried():
    proto, _ = matmul_with_transposed_weight()
    model = ir.from_proto(proto)
    set_datatype(model.graph.initializers["W"], DataType.parse("INT4"))
    assert FoldTransposeIntoInitializer()(model).modified
    assert get_datatype(model.graph.initializers["Wt"]) == DataType.parse("INT4")
