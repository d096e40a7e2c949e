"""div-to-mul: structure, numerics within an ulp (executor and onnxruntime), exact_only, declines, corpus."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper

from qonnx_tools._ir import ir
from qonnx_tools.executor import execute
from qonnx_tools.passes import make_pass, parse_pipeline, registered_passes
from qonnx_tools.passes.div_to_mul import DivToMul, reciprocal_constant
from qonnx_tools.testing import (
    assert_bit_identical,
    assert_corpus_outputs_unchanged,
    brevitas_corpus,
    make_proto,
    op_types,
    run_before_and_after,
)

F = TensorProto.FLOAT


def assert_close(proto, model, feeds, rtol=1e-6):
    ex0, ex1, rt0, rt1 = run_before_and_after(proto, model, feeds)
    for name in ex0:
        np.testing.assert_allclose(ex1[name], ex0[name], rtol=rtol, atol=0)
        np.testing.assert_allclose(rt1[name], rt0[name], rtol=rtol, atol=0)


rng = np.random.default_rng(0)


def rand(*shape, dtype=np.float32):
    return (rng.standard_normal(shape) * 3).astype(dtype)


# -- registration -----------------------------------------------------------------------
def test_registered_with_summaries_and_pipeline_options():
    passes = registered_passes()
    assert passes["div-to-mul"] is DivToMul
    assert "ulp" in DivToMul.summary and "ulp" in DivToMul.__doc__
    assert make_pass("div-to-mul", {"exact_only": "true"}) == DivToMul(exact_only=True)
    assert (
        parse_pipeline("sub-to-add,div-to-mul{exact_only=true}").describe() == "sub-to-add,div-to-mul{exact_only=True}"
    )


@pytest.mark.parametrize(
    "x_shape,c",
    [
        ((2, 3, 4), (rng.random(4) + 0.1).astype(np.float32)),
        ((2, 3, 4), np.float32(3.0)),
        ((4,), (rng.random((2, 1, 4)) + 0.5).astype(np.float32)),
        ((2, 3), np.array([[7.0], [-0.3]], dtype=np.float32)[:1]),
    ],
)
def test_div_float_constant_becomes_mul_within_an_ulp(x_shape, c):
    out_shape = np.broadcast_shapes(x_shape, np.shape(c))
    proto = make_proto(
        [helper.make_node("Div", ["x", "c"], ["y"], name="div")], [("x", F, x_shape)], [("y", F, out_shape)], [("c", c)]
    )
    model = ir.from_proto(proto)
    p = DivToMul()
    assert p(model).modified and p.declined == []
    assert op_types(model) == ["Mul"]
    mul = next(iter(model.graph))
    assert mul.name == "div" and mul.outputs[0].name == "y"
    np.testing.assert_array_equal(
        mul.inputs[1].const_value.numpy(), (1.0 / np.asarray(c, np.float64)).astype(np.float32)
    )
    assert_close(proto, model, {"x": rand(*x_shape)}, rtol=1e-6)
    assert not DivToMul()(model).modified


def test_div_by_power_of_two_is_bit_exact_and_exact_only_keeps_others():
    c = np.array([0.25, 2.0, 8.0, 0.5], dtype=np.float32)
    proto = make_proto(
        [
            helper.make_node("Div", ["x", "c"], ["a"], name="exact"),
            helper.make_node("Div", ["a", "k"], ["y"], name="inexact"),
        ],
        [("x", F, (3, 4))],
        [("y", F, (3, 4))],
        [("c", c), ("k", np.float32(3.0))],
    )
    model = ir.from_proto(proto)
    p = DivToMul(exact_only=True)
    assert p(model).modified
    assert op_types(model) == ["Mul", "Div"]
    assert p.declined == ["node 'inexact' (Div): 1/c is not exact (exact_only: only powers of two are converted)"]
    assert_bit_identical(proto, model, {"x": rand(3, 4)})


@pytest.mark.parametrize(
    "c,dtype,reason",
    [
        (np.array([1.0, 0.0], np.float32), TensorProto.FLOAT, "zero"),
        (np.array([1e-39, 1.0], np.float32), TensorProto.FLOAT, "overflows"),  # subnormal divisor
        (np.array([1e38, 1.0], np.float32), TensorProto.FLOAT, "subnormal"),
        (np.array([2, 3], np.int32), TensorProto.INT32, "integer division"),
        (np.array([2, 3], np.int64), TensorProto.INT64, "integer division"),
    ],
)
def test_div_declines(c, dtype, reason):
    proto = make_proto(
        [helper.make_node("Div", ["x", "c"], ["y"], name="d")], [("x", dtype, (2,))], [("y", dtype, (2,))], [("c", c)]
    )
    model = ir.from_proto(proto)
    p = DivToMul()
    assert not p(model).modified
    assert op_types(model) == ["Div"]
    assert reason in p.declined[0]


def test_div_constant_left_declines():
    proto = make_proto(
        [helper.make_node("Div", ["c", "x"], ["y"], name="rdiv")], [("x", F, (2,))], [("y", F, (2,))], [("c", rand(2))]
    )
    model = ir.from_proto(proto)
    p = DivToMul()
    assert not p(model).modified
    assert "left operand" in p.declined[0]


def test_reciprocal_is_correctly_rounded():
    c = (rng.random(1000) * 100 + 1e-3).astype(np.float32)
    got = reciprocal_constant(c)
    want = np.array([np.float32(1) / v for v in c], dtype=np.float32)  # IEEE float32 division
    np.testing.assert_array_equal(got, want)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**16), size=st.integers(1, 6))
def test_div_to_mul_property_within_two_ulp(seed, size):
    gen = np.random.default_rng(seed)
    c = (gen.uniform(0.01, 100, size) * gen.choice([-1, 1], size)).astype(np.float32)
    x = (gen.standard_normal((3, size)) * 100).astype(np.float32)
    proto = make_proto(
        [helper.make_node("Div", ["x", "c"], ["y"])], [("x", F, (3, size))], [("y", F, (3, size))], [("c", c)]
    )
    model = ir.from_proto(proto)
    assert DivToMul()(model).modified
    got = execute(model, {"x": x})["y"]
    want = x / c
    ulp = np.spacing(np.abs(want))
    assert np.all(np.abs(got - want) <= 2 * ulp)


# -- corpus -------------------------------------------------------------------------------
CORPUS = brevitas_corpus()


@pytest.mark.shared
@pytest.mark.parametrize("path", CORPUS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_corpus_outputs_unchanged(path):
    assert_corpus_outputs_unchanged(path, DivToMul())
