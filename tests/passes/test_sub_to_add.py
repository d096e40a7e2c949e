"""sub-to-add, and through it the constant-operand machinery it shares with div-to-mul
(_arith_canonical.py): structure, numerics (executor and onnxruntime), declines, honesty,
subgraphs, corpus."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from qonnx_tools._ir import common_passes, ir
from qonnx_tools.annotations import get_datatype, set_datatype
from qonnx_tools.datatypes import DataType
from qonnx_tools.executor import execute
from qonnx_tools.passes import registered_passes
from qonnx_tools.passes.sub_to_add import SubToAdd
from qonnx_tools.runtime import run_onnxruntime
from qonnx_tools.testing import (
    assert_bit_identical,
    assert_corpus_outputs_unchanged,
    brevitas_corpus,
    make_proto,
    op_types,
)

F = TensorProto.FLOAT
rng = np.random.default_rng(0)


def rand(*shape, dtype=np.float32):
    return (rng.standard_normal(shape) * 3).astype(dtype)


# -- registration -----------------------------------------------------------------------
def test_registered():
    passes = registered_passes()
    assert passes["sub-to-add"] is SubToAdd


@pytest.mark.parametrize(
    "x_shape,c",
    [
        ((2, 3, 4), rand(4)),  # broadcast on the last axis
        ((2, 3, 4), rand(3, 1)),  # broadcast on a middle axis
        ((2, 3, 4), np.float32(1.5)),  # scalar
        ((4,), rand(2, 3, 4)),  # the constant is the bigger operand
    ],
)
def test_sub_constant_right_becomes_add_bit_exact(x_shape, c):
    out_shape = np.broadcast_shapes(x_shape, np.shape(c))
    proto = make_proto(
        [helper.make_node("Sub", ["x", "c"], ["y"], name="sub")], [("x", F, x_shape)], [("y", F, out_shape)], [("c", c)]
    )
    model = ir.from_proto(proto)
    p = SubToAdd()
    assert p(model).modified and p.declined == []
    assert op_types(model) == ["Add"]
    add = next(iter(model.graph))
    assert add.name == "sub" and add.outputs[0].name == "y"
    new_c = add.inputs[1]
    np.testing.assert_array_equal(new_c.const_value.numpy(), -np.asarray(c))
    assert "c" not in model.graph.initializers  # the old constant had no other use
    assert_bit_identical(proto, model, {"x": rand(*x_shape)})
    assert not SubToAdd()(model).modified


def test_sub_constant_left_declines():
    proto = make_proto(
        [helper.make_node("Sub", ["c", "x"], ["y"], name="rsub")],
        [("x", F, (2, 4))],
        [("y", F, (2, 4))],
        [("c", rand(4))],
    )
    model = ir.from_proto(proto)
    p = SubToAdd()
    assert not p(model).modified
    assert op_types(model) == ["Sub"]
    assert p.declined == ["node 'rsub' (Sub): constant is the left operand (Sub(c, x)); only Sub(x, c) is rewritten"]


def test_sub_both_dynamic_declines():
    proto = make_proto(
        [helper.make_node("Sub", ["a", "b"], ["y"], name="s")], [("a", F, (3,)), ("b", F, (3,))], [("y", F, (3,))]
    )
    model = ir.from_proto(proto)
    p = SubToAdd()
    assert not p(model).modified and op_types(model) == ["Sub"]
    assert "not a constant" in p.declined[0]


def test_initializer_listed_as_graph_input_is_not_constant_until_removed():
    c = rand(4)
    proto = make_proto(
        [helper.make_node("Sub", ["x", "c"], ["y"], name="s")],
        [("x", F, (2, 4))],
        [("y", F, (2, 4))],
        [("c", c)],
        extra_inputs=[helper.make_tensor_value_info("c", F, (4,))],
    )
    model = ir.from_proto(proto)
    p = SubToAdd()
    assert not p(model).modified
    assert "remove-static-inputs" in p.declined[0]
    common_passes.RemoveInitializersFromInputsPass()(model)
    assert SubToAdd()(model).modified
    assert op_types(model) == ["Add"]
    assert_bit_identical(proto, model, {"x": rand(2, 4)})


def test_legacy_broadcast_opset_declines():
    node = helper.make_node("Sub", ["x", "c"], ["y"], name="s", broadcast=1, axis=1)
    proto = make_proto([node], [("x", F, (2, 3, 4))], [("y", F, (2, 3, 4))], [("c", rand(3))], opset=6)
    model = ir.from_proto(proto)
    p = SubToAdd()
    assert not p(model).modified and op_types(model) == ["Sub"]
    assert "opset < 7" in p.declined[0]


def test_constant_node_operand_and_removal():
    c = rand(3)
    proto = make_proto(
        [
            helper.make_node("Constant", [], ["c"], value=numpy_helper.from_array(c)),
            helper.make_node("Sub", ["x", "c"], ["y"], name="s"),
        ],
        [("x", F, (3,))],
        [("y", F, (3,))],
    )
    model = ir.from_proto(proto)
    assert SubToAdd()(model).modified
    assert op_types(model) == ["Add"]  # the Constant node lost its only use and is gone
    assert_bit_identical(proto, model, {"x": rand(3)})


def test_shared_constant_gives_one_negated_initializer_and_is_kept_while_used():
    c = rand(4)
    proto = make_proto(
        [
            helper.make_node("Sub", ["x", "c"], ["a"], name="s1"),
            helper.make_node("Sub", ["a", "c"], ["b"], name="s2"),
            helper.make_node("Mul", ["b", "c"], ["y"], name="m"),
        ],
        [("x", F, (2, 4))],
        [("y", F, (2, 4))],
        [("c", c)],
    )
    model = ir.from_proto(proto)
    assert SubToAdd()(model).modified
    assert op_types(model) == ["Add", "Add", "Mul"]
    adds = [n for n in model.graph if n.op_type == "Add"]
    assert adds[0].inputs[1] is adds[1].inputs[1]
    assert sorted(model.graph.initializers) == ["c", "c_neg"]
    assert_bit_identical(proto, model, {"x": rand(2, 4)})


def test_new_initializer_name_avoids_existing_names():
    proto = make_proto(
        [helper.make_node("Sub", ["x", "c"], ["c_neg"], name="s"), helper.make_node("Relu", ["c_neg"], ["y"])],
        [("x", F, (3,))],
        [("y", F, (3,))],
        [("c", rand(3))],
    )
    model = ir.from_proto(proto)
    assert SubToAdd()(model).modified
    names = [v.name for v in model.graph.initializers.values()] + [n.outputs[0].name for n in model.graph]
    assert len(names) == len(set(names))
    assert_bit_identical(proto, model, {"x": rand(3)})


@pytest.mark.parametrize(
    "dtype,tensor_type,values,converts",
    [
        (np.int32, TensorProto.INT32, [1, -7, 100], True),
        (np.int8, TensorProto.INT8, [1, -128, 3], False),  # -(-128) overflows int8
        (np.uint8, TensorProto.UINT8, [1, 2, 3], False),
        (np.float16, TensorProto.FLOAT16, [0.5, -2.25, 3.0], True),
        (np.float64, TensorProto.DOUBLE, [0.1, -2.0, 1e300], True),
    ],
)
def test_sub_element_types(dtype, tensor_type, values, converts):
    c = np.array(values, dtype=dtype)
    proto = make_proto(
        [helper.make_node("Sub", ["x", "c"], ["y"], name="s")],
        [("x", tensor_type, (2, 3))],
        [("y", tensor_type, (2, 3))],
        [("c", c)],
        opset=14,  # int8/uint8 Sub needs opset 14
    )
    model = ir.from_proto(proto)
    p = SubToAdd()
    assert p(model).modified is converts
    assert op_types(model) == (["Add"] if converts else ["Sub"])
    if not converts:
        assert p.declined
    x = (rng.integers(0, 50, (2, 3)) if np.dtype(dtype).kind in "iu" else rand(2, 3)).astype(dtype)
    assert_bit_identical(proto, model, {"x": x})


def test_graph_output_name_and_annotation_survive():
    proto = make_proto(
        [helper.make_node("Sub", ["x", "c"], ["y"], name="s")], [("x", F, (3,))], [("y", F, (3,))], [("c", rand(3))]
    )
    model = ir.from_proto(proto)
    set_datatype(model.graph.outputs[0], DataType.parse("FLOAT32"))
    assert SubToAdd()(model).modified
    out = model.graph.outputs[0]
    assert out.name == "y" and out.producer().op_type == "Add"
    assert get_datatype(out) == DataType.parse("FLOAT32")
    assert out.shape == ir.Shape([3]) and out.dtype == ir.DataType.FLOAT


@settings(max_examples=30, deadline=None)
@given(
    x_shape=st.lists(st.integers(1, 4), min_size=0, max_size=3),
    c_rank=st.integers(0, 3),
    seed=st.integers(0, 2**16),
)
def test_sub_to_add_property_bit_exact(x_shape, c_rank, seed):
    gen = np.random.default_rng(seed)
    c_shape = [gen.choice([1, d]) for d in x_shape[len(x_shape) - c_rank :]] if c_rank <= len(x_shape) else [1] * c_rank
    c = (gen.standard_normal(c_shape) * 10).astype(np.float32)
    out_shape = np.broadcast_shapes(tuple(x_shape), c.shape)
    proto = make_proto(
        [helper.make_node("Sub", ["x", "c"], ["y"])], [("x", F, x_shape)], [("y", F, out_shape)], [("c", c)]
    )
    model = ir.from_proto(proto)
    assert SubToAdd()(model).modified
    x = (gen.standard_normal(x_shape) * 10).astype(np.float32)
    np.testing.assert_array_equal(execute(model, {"x": x})["y"], np.asarray(x - c))


def test_subgraph_and_outer_graph_share_a_constant():
    c = rand(3)
    then_branch = helper.make_graph(
        [helper.make_node("Sub", ["x", "c"], ["t_out"], name="inner")],
        "then",
        [],
        [helper.make_tensor_value_info("t_out", F, (3,))],
    )
    else_branch = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["e_out"])], "else", [], [helper.make_tensor_value_info("e_out", F, (3,))]
    )
    nodes = [
        helper.make_node("If", ["cond"], ["branch"], then_branch=then_branch, else_branch=else_branch),
        helper.make_node("Sub", ["branch", "c"], ["y"], name="outer"),
    ]
    proto = make_proto(nodes, [("x", F, (3,)), ("cond", TensorProto.BOOL, ())], [("y", F, (3,))], [("c", c)])
    model = ir.from_proto(proto)
    assert SubToAdd()(model).modified
    assert op_types(model) == ["If", "Add"]
    inner = next(iter(next(iter(model.graph)).attributes["then_branch"].value))
    assert inner.op_type == "Add"
    before = ir.from_proto(proto)
    for cond in (True, False):
        feeds = {"x": rand(3), "cond": np.array(cond)}
        np.testing.assert_array_equal(run_onnxruntime(model, feeds)["y"], run_onnxruntime(before, feeds)["y"])
    assert not SubToAdd()(model).modified


# -- corpus -------------------------------------------------------------------------------
CORPUS = brevitas_corpus()


@pytest.mark.shared
@pytest.mark.parametrize("path", CORPUS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_corpus_outputs_unchanged(path):
    assert_corpus_outputs_unchanged(path, SubToAdd())
