"""gemm-to-matmul: every transA/transB/alpha/beta/C/constness combination, declines, honesty, corpus."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from qonnx_tools import model_io
from qonnx_tools._ir import ir
from qonnx_tools.annotations import get_datatype, set_datatype
from qonnx_tools.datatypes import DataType
from qonnx_tools.executor import execute
from qonnx_tools.passes import make_pass, registered_passes
from qonnx_tools.passes.gemm_to_matmul import GemmToMatMul
from qonnx_tools.runtime import run_onnxruntime
from qonnx_tools.testing import assert_outputs_close, brevitas_corpus, corpus_input, prepare_corpus_model, run_executor

F = TensorProto.FLOAT
M, K, N = 3, 4, 5


def ops(model):
    return [n.op_type for n in model.graph]


def gemm_proto(
    *,
    trans_a=0,
    trans_b=0,
    alpha=1.0,
    beta=1.0,
    a_const=False,
    b_const=True,
    c_mode="const",
    c_shape=(N,),
    dtype=np.float32,
    seed=0,
    opset=13,
):
    gen = np.random.default_rng(seed)
    tensor_type = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))

    def array(shape):
        if np.dtype(dtype).kind in "iu":
            return gen.integers(-5, 6, shape).astype(dtype)
        return gen.standard_normal(shape).astype(dtype)

    a = array((K, M) if trans_a else (M, K))
    b = array((N, K) if trans_b else (K, N))
    c = array(c_shape)
    inits, inputs, feeds = [], [], {}

    def add(name, arr, const):
        if const:
            inits.append(numpy_helper.from_array(arr, name))
        else:
            inputs.append(helper.make_tensor_value_info(name, tensor_type, arr.shape))
            feeds[name] = arr

    add("A", a, a_const)
    add("B", b, b_const)
    names = ["A", "B"]
    if c_mode != "none":
        add("C", c, c_mode == "const")
        names.append("C")
    node = helper.make_node("Gemm", names, ["Y"], name="gemm", alpha=alpha, beta=beta, transA=trans_a, transB=trans_b)
    graph = helper.make_graph([node], "g", inputs, [helper.make_tensor_value_info("Y", tensor_type, (M, N))], inits)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    proto.ir_version = 8
    return proto, feeds


def compare(proto, model, feeds, rtol=1e-5, exact=False):
    before = ir.from_proto(proto)
    ex0, ex1 = execute(before, feeds), execute(model, feeds)
    rt0, rt1 = run_onnxruntime(before, feeds), run_onnxruntime(model, feeds)
    for name in ex0:
        if exact:
            np.testing.assert_array_equal(ex1[name], ex0[name])
        np.testing.assert_allclose(ex1[name], ex0[name], rtol=rtol, atol=rtol)
        np.testing.assert_allclose(rt1[name], rt0[name], rtol=rtol, atol=rtol)


def test_registered():
    assert registered_passes()["gemm-to-matmul"] is GemmToMatMul
    assert GemmToMatMul.summary


COMBOS = [
    combo
    for combo in itertools.product(
        [0, 1], [0, 1], [1.0, 0.5, 1.3], [1.0, 0.0, 2.5], [False, True], [False, True], ["none", "const", "dyn"]
    )
    if not (combo[4] and combo[5] and combo[6] != "dyn")  # something must be a graph input
]


@pytest.mark.parametrize("trans_a,trans_b,alpha,beta,a_const,b_const,c_mode", COMBOS)
def test_every_combination(trans_a, trans_b, alpha, beta, a_const, b_const, c_mode):
    proto, feeds = gemm_proto(
        trans_a=trans_a, trans_b=trans_b, alpha=alpha, beta=beta, a_const=a_const, b_const=b_const, c_mode=c_mode
    )
    model = ir.from_proto(proto)
    p = GemmToMatMul()
    assert p(model).modified and p.declined == []
    kinds = ops(model)
    assert "Gemm" not in kinds and kinds.count("MatMul") == 1
    # transposes of constants are folded; of dynamic operands they are nodes
    assert kinds.count("Transpose") == (trans_a and not a_const) + (trans_b and not b_const)
    has_c = c_mode != "none" and beta != 0.0
    alpha_mul = alpha != 1.0 and not (a_const or b_const)
    beta_mul = has_c and beta != 1.0 and c_mode == "dyn"
    assert kinds.count("Mul") == alpha_mul + beta_mul
    assert kinds.count("Add") == has_c
    out = model.graph.outputs[0]
    assert out.name == "Y" and out.producer().op_type == kinds[-1]
    compare(proto, model, feeds)
    assert not GemmToMatMul()(model).modified


@pytest.mark.parametrize("c_shape", [(N,), (1, N), (M, 1), (M, N), ()])
def test_c_broadcasting(c_shape):
    proto, feeds = gemm_proto(c_shape=c_shape, beta=0.75, trans_b=1)
    model = ir.from_proto(proto)
    assert GemmToMatMul()(model).modified
    compare(proto, model, feeds)


def test_plain_gemm_is_bit_exact_and_weights_transposed_once():
    proto, feeds = gemm_proto(trans_b=1)
    model = ir.from_proto(proto)
    assert GemmToMatMul()(model).modified
    assert ops(model) == ["MatMul", "Add"]
    matmul = next(iter(model.graph))
    assert matmul.name == "gemm"
    b_t = matmul.inputs[1]
    assert b_t.name == "B_T" and "B" not in model.graph.initializers  # transposed in place of the old one
    np.testing.assert_array_equal(b_t.const_value.numpy(), numpy_helper.to_array(proto.graph.initializer[0]).T)
    compare(proto, model, feeds, exact=True)


def test_power_of_two_alpha_folds_exactly():
    proto, feeds = gemm_proto(alpha=0.25, trans_b=1)
    model = ir.from_proto(proto)
    assert GemmToMatMul()(model).modified
    assert ops(model) == ["MatMul", "Add"]
    compare(proto, model, feeds, exact=True)


def test_alpha_folds_into_a_constant_left_operand():
    proto, feeds = gemm_proto(alpha=3.0, a_const=True, b_const=False, trans_a=1)
    model = ir.from_proto(proto)
    assert GemmToMatMul()(model).modified
    assert ops(model) == ["MatMul", "Add"]
    a_in = next(iter(model.graph)).inputs[0]
    assert a_in.name == "A_T_scaled"
    a = numpy_helper.to_array(proto.graph.initializer[0])
    np.testing.assert_allclose(a_in.const_value.numpy(), a.T * 3.0, rtol=1e-7)
    compare(proto, model, feeds)


def test_shared_weight_gives_one_transposed_initializer_and_kept_while_used():
    gen = np.random.default_rng(3)
    w = gen.standard_normal((N, K)).astype(np.float32)
    nodes = [
        helper.make_node("Gemm", ["x1", "W"], ["y1"], name="g1", transB=1),
        helper.make_node("Gemm", ["x2", "W"], ["y2"], name="g2", transB=1),
        helper.make_node("Gemm", ["x3", "W"], ["y3"], name="g3", transB=1, alpha=2.0),
        helper.make_node("ReduceSum", ["W"], ["wsum"], name="uses_w", keepdims=0),
    ]
    inputs = [helper.make_tensor_value_info(f"x{i}", F, (M, K)) for i in (1, 2, 3)]
    outputs = [
        helper.make_tensor_value_info(n, F, s)
        for n, s in (("y1", (M, N)), ("y2", (M, N)), ("y3", (M, N)), ("wsum", ()))
    ]
    graph = helper.make_graph(nodes, "g", inputs, outputs, [numpy_helper.from_array(w, "W")])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    proto.ir_version = 8
    model = ir.from_proto(proto)
    assert GemmToMatMul()(model).modified
    matmuls = [n for n in model.graph if n.op_type == "MatMul"]
    assert matmuls[0].inputs[1] is matmuls[1].inputs[1]
    assert sorted(model.graph.initializers) == ["W", "W_T", "W_T_scaled"]
    feeds = {f"x{i}": gen.standard_normal((M, K)).astype(np.float32) for i in (1, 2, 3)}
    compare(proto, model, feeds)


@pytest.mark.parametrize("dtype", [np.int32, np.int64])
def test_integer_gemm(dtype):
    proto, feeds = gemm_proto(dtype=dtype, trans_b=1, c_mode="dyn")
    model = ir.from_proto(proto)
    assert GemmToMatMul()(model).modified
    assert ops(model) == ["MatMul", "Add"]
    np.testing.assert_array_equal(execute(model, feeds)["Y"], execute(ir.from_proto(proto), feeds)["Y"])

    proto, _ = gemm_proto(dtype=dtype, alpha=2.0)
    model = ir.from_proto(proto)
    p = GemmToMatMul()
    assert not p(model).modified and ops(model) == ["Gemm"]
    assert p.declined == [
        f"node 'gemm' (Gemm): integer Gemm ({'INT32' if dtype == np.int32 else 'INT64'}) with alpha=2.0"
    ]


def test_unknown_element_type_with_scalar_factor_declines():
    nodes = [
        helper.make_node("Relu", ["a"], ["ra"]),
        helper.make_node("Relu", ["b"], ["rb"]),
        helper.make_node("Gemm", ["ra", "rb"], ["Y"], name="gemm", alpha=0.3),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("a", F, (M, K)), helper.make_tensor_value_info("b", F, (K, N))],
        [helper.make_empty_tensor_value_info("Y")],
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model = ir.from_proto(proto)
    p = GemmToMatMul()
    assert not p(model).modified
    assert "infer-shapes" in p.declined[0]
    make_pass("infer-shapes")(model)
    assert GemmToMatMul()(model).modified
    assert ops(model) == ["Relu", "Relu", "MatMul", "Mul"]


def test_legacy_broadcast_opset_declines():
    proto, _ = gemm_proto(opset=6)
    model = ir.from_proto(proto)
    p = GemmToMatMul()
    assert not p(model).modified and ops(model) == ["Gemm"]
    assert "opset < 7" in p.declined[0]


def test_annotation_and_no_gemm_means_unmodified():
    proto, feeds = gemm_proto(c_mode="none")
    model = ir.from_proto(proto)
    set_datatype(model.graph.outputs[0], DataType.parse("FLOAT32"))
    assert GemmToMatMul()(model).modified
    assert get_datatype(model.graph.outputs[0]) == DataType.parse("FLOAT32")
    assert ops(model) == ["MatMul"]
    assert not GemmToMatMul()(model).modified


@settings(max_examples=25, deadline=None)
@given(
    m=st.integers(1, 4),
    k=st.integers(1, 4),
    n=st.integers(1, 4),
    trans_a=st.booleans(),
    trans_b=st.booleans(),
    alpha=st.sampled_from([1.0, 0.5, -2.0, 0.1]),
    beta=st.sampled_from([1.0, 0.0, 3.0]),
    seed=st.integers(0, 1000),
)
def test_property_matches_numpy_formula(m, k, n, trans_a, trans_b, alpha, beta, seed):
    gen = np.random.default_rng(seed)
    a = gen.standard_normal((k, m) if trans_a else (m, k)).astype(np.float32)
    b = gen.standard_normal((n, k) if trans_b else (k, n)).astype(np.float32)
    c = gen.standard_normal((n,)).astype(np.float32)
    node = helper.make_node(
        "Gemm", ["a", "B", "C"], ["y"], alpha=alpha, beta=beta, transA=int(trans_a), transB=int(trans_b)
    )
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("a", F, a.shape)],
        [helper.make_tensor_value_info("y", F, (m, n))],
        [numpy_helper.from_array(b, "B"), numpy_helper.from_array(c, "C")],
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model = ir.from_proto(proto)
    assert GemmToMatMul()(model).modified
    want = alpha * ((a.T if trans_a else a).astype(np.float64) @ (b.T if trans_b else b)) + beta * c
    np.testing.assert_allclose(execute(model, {"a": a})["y"], want, rtol=1e-5, atol=1e-5)


# -- corpus -------------------------------------------------------------------------------
CORPUS = brevitas_corpus()


@pytest.mark.shared
@pytest.mark.parametrize("path", CORPUS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_corpus_outputs_unchanged(path):
    x = corpus_input(path)
    model = prepare_corpus_model(path)
    expected = run_executor(model, x)
    had = ops(model).count("Gemm")
    p = GemmToMatMul()
    assert p(model).modified == bool(had)
    assert "Gemm" not in ops(model), p.declined
    got = run_executor(model, x)
    assert_outputs_close(path, expected, got)
    if all(n.domain == "" for n in model.graph):  # QCDQ: onnxruntime runs it too
        feeds = {model.graph.inputs[0].name: x}
        rt0, rt1 = run_onnxruntime(model_io.load(path), feeds), run_onnxruntime(model, feeds)
        for name, want in rt0.items():
            scale = max(1.0, float(np.max(np.abs(want))))
            assert float(np.max(np.abs(rt1[name] - want))) <= 1e-5 * scale, name
