"""batchnorm-to-affine: structure, numerics (executor and onnxruntime), declines, honesty, corpus."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from qonnx_tools._ir import common_passes, ir
from qonnx_tools.annotations import get_datatype, set_datatype
from qonnx_tools.datatypes import DataType
from qonnx_tools.executor import execute
from qonnx_tools.passes import make_pass, registered_passes
from qonnx_tools.passes.batchnorm_to_affine import BatchNormToAffine
from qonnx_tools.runtime import run_onnxruntime
from qonnx_tools import testing
from qonnx_tools.testing import assert_outputs_close, brevitas_corpus, corpus_input, prepare_corpus_model, run_executor

F = TensorProto.FLOAT
rng = np.random.default_rng(1)


def make_proto(nodes, inputs, outputs, inits=(), opset=15, **kwargs):
    return testing.make_proto(nodes, inputs, outputs, inits, opset, **kwargs)


def bn_params(c, dtype=np.float32):
    return [
        ("scale", (rng.standard_normal(c) * 2).astype(dtype)),
        ("bias", rng.standard_normal(c).astype(dtype)),
        ("mean", rng.standard_normal(c).astype(dtype)),
        ("var", (rng.random(c) + 0.05).astype(dtype)),
    ]


def bn_model(shape, *, dtype=F, np_dtype=np.float32, opset=15, out_shape="same", **attrs):
    c = shape[1] if len(shape) > 1 else shape[0]
    node = helper.make_node("BatchNormalization", ["x", "scale", "bias", "mean", "var"], ["y"], name="bn", **attrs)
    return make_proto(
        [node],
        [("x", dtype, shape)],
        [("y", dtype, shape if out_shape == "same" else out_shape)],
        bn_params(c, np_dtype),
        opset,
    )


def ops(model):
    return [n.op_type for n in model.graph]


def compare(proto, model, feeds, *, rtol_ort=1e-5, exact_executor=True):
    """Executor before == after (bit-exact: same formula, same precision); onnxruntime before ~ after."""
    before = ir.from_proto(proto)
    ex0, ex1 = execute(before, feeds), execute(model, feeds)
    rt0, rt1 = run_onnxruntime(before, feeds), run_onnxruntime(model, feeds)
    for name in ex0:
        if exact_executor:
            np.testing.assert_array_equal(ex1[name], ex0[name])
        else:
            np.testing.assert_allclose(ex1[name], ex0[name], rtol=rtol_ort, atol=rtol_ort)
        np.testing.assert_allclose(rt1[name], rt0[name], rtol=rtol_ort, atol=rtol_ort)
        np.testing.assert_allclose(rt1[name], ex1[name], rtol=rtol_ort, atol=rtol_ort)


def test_registered():
    assert registered_passes()["batchnorm-to-affine"] is BatchNormToAffine
    assert BatchNormToAffine.summary


@pytest.mark.parametrize("shape", [(3, 5), (2, 4, 7), (2, 3, 5, 5), (1, 2, 3, 4, 5)])
def test_any_rank_becomes_mul_add_on_the_channel_axis(shape):
    proto = bn_model(shape, epsilon=1e-3)
    model = ir.from_proto(proto)
    p = BatchNormToAffine()
    assert p(model).modified and p.declined == []
    assert ops(model) == ["Mul", "Add"]
    mul, add = list(model.graph)
    c = shape[1]
    expected_shape = (c,) + (1,) * (len(shape) - 2)
    assert mul.inputs[1].const_value.shape.dims == expected_shape
    assert add.inputs[1].const_value.shape.dims == expected_shape
    assert add.name == "bn" and add.outputs[0].name == "y" and add.outputs[0].is_graph_output()
    assert sorted(model.graph.initializers) == ["bn_factor", "bn_shift"]  # old parameters removed
    # the constants are the textbook formula
    proto_params = {t.name: numpy_helper.to_array(t).astype(np.float64) for t in proto.graph.initializer}
    factor = proto_params["scale"] / np.sqrt(proto_params["var"] + np.float32(1e-3))
    np.testing.assert_allclose(mul.inputs[1].const_value.numpy().ravel(), factor, rtol=1e-6)
    np.testing.assert_allclose(
        add.inputs[1].const_value.numpy().ravel(),
        proto_params["bias"] - proto_params["mean"] * factor,
        rtol=1e-5,
        atol=1e-6,
    )
    compare(proto, model, {"x": rng.standard_normal(shape).astype(np.float32)})
    assert not BatchNormToAffine()(model).modified


def test_float64_and_float16():
    proto = bn_model((2, 3, 4), dtype=TensorProto.DOUBLE, np_dtype=np.float64)
    model = ir.from_proto(proto)
    assert BatchNormToAffine()(model).modified
    assert model.graph.initializers["bn_factor"].const_value.dtype == ir.DataType.DOUBLE
    compare(proto, model, {"x": rng.standard_normal((2, 3, 4))}, rtol_ort=1e-10)

    proto = bn_model((2, 3, 4), dtype=TensorProto.FLOAT16, np_dtype=np.float16)
    model = ir.from_proto(proto)
    assert BatchNormToAffine()(model).modified
    assert model.graph.initializers["bn_factor"].const_value.dtype == ir.DataType.FLOAT16
    # float16 rounds after the Mul and after the Add (the kernel rounds once): a few half ulps
    compare(proto, model, {"x": rng.standard_normal((2, 3, 4)).astype(np.float16)}, rtol_ort=5e-3, exact_executor=False)


def test_training_mode_declines():
    proto = bn_model((2, 3, 4), training_mode=1)
    model = ir.from_proto(proto)
    p = BatchNormToAffine()
    assert not p(model).modified
    assert ops(model) == ["BatchNormalization"]
    assert p.declined == ["node 'bn' (BatchNormalization): training_mode=1 (uses batch statistics)"]


def test_used_running_stat_outputs_block_the_rewrite():
    node = helper.make_node(
        "BatchNormalization", ["x", "scale", "bias", "mean", "var"], ["y", "rm", "rv"], name="bn", training_mode=1
    )
    proto = make_proto(
        [node], [("x", F, (2, 3, 4))], [("y", F, (2, 3, 4)), ("rm", F, (3,)), ("rv", F, (3,))], bn_params(3)
    )
    model = ir.from_proto(proto)
    assert not BatchNormToAffine()(model).modified
    assert ops(model) == ["BatchNormalization"]


def test_dynamic_parameters_decline():
    node = helper.make_node("BatchNormalization", ["x", "scale", "bias", "mean", "var"], ["y"], name="bn")
    params = bn_params(3)
    proto = make_proto([node], [("x", F, (2, 3, 4)), ("scale", F, (3,))], [("y", F, (2, 3, 4))], params[1:])
    model = ir.from_proto(proto)
    p = BatchNormToAffine()
    assert not p(model).modified
    assert p.declined == ["node 'bn' (BatchNormalization): scale 'scale' is not constant"]


def test_initializer_graph_inputs_decline_until_removed():
    node = helper.make_node("BatchNormalization", ["x", "scale", "bias", "mean", "var"], ["y"], name="bn")
    params = bn_params(3)
    extra = [helper.make_tensor_value_info(n, F, (3,)) for n, _ in params]
    proto = make_proto([node], [("x", F, (2, 3, 4))], [("y", F, (2, 3, 4))], params, extra_inputs=extra)
    model = ir.from_proto(proto)
    p = BatchNormToAffine()
    assert not p(model).modified
    assert "remove-static-inputs" in p.declined[0]
    common_passes.RemoveInitializersFromInputsPass()(model)
    assert BatchNormToAffine()(model).modified
    compare(proto, model, {"x": rng.standard_normal((2, 3, 4)).astype(np.float32)})


def test_unknown_rank_declines_and_infer_shapes_fixes_it():
    node_a = helper.make_node("Relu", ["x"], ["r"])
    node_b = helper.make_node("BatchNormalization", ["r", "scale", "bias", "mean", "var"], ["y"], name="bn")
    graph = helper.make_graph(
        [node_a, node_b],
        "g",
        [helper.make_tensor_value_info("x", F, (2, 3, 4, 4))],
        [helper.make_tensor_value_info("y", F, None)],
        initializer=[numpy_helper.from_array(a, n) for n, a in bn_params(3)],
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)])
    proto.ir_version = 8
    model = ir.from_proto(proto)
    p = BatchNormToAffine()
    assert not p(model).modified
    assert "infer-shapes" in p.declined[0]
    make_pass("infer-shapes")(model)
    assert BatchNormToAffine()(model).modified
    assert model.graph.initializers["bn_factor"].const_value.shape.dims == (3, 1, 1)
    compare(proto, model, {"x": rng.standard_normal((2, 3, 4, 4)).astype(np.float32)})


def test_legacy_broadcast_opset_declines():
    proto = bn_model((2, 3, 4), opset=6)
    model = ir.from_proto(proto)
    p = BatchNormToAffine()
    assert not p(model).modified
    assert "opset < 7" in p.declined[0]


def test_rank_one_input_declines():
    proto = bn_model((3,))
    model = ir.from_proto(proto)
    p = BatchNormToAffine()
    assert not p(model).modified
    assert "rank 1 < 2" in p.declined[0]


def test_shared_parameters_kept_and_constant_node_parameters():
    params = bn_params(3)
    nodes = [
        helper.make_node("Constant", [], ["scale"], value=numpy_helper.from_array(params[0][1])),
        helper.make_node("BatchNormalization", ["x", "scale", "bias", "mean", "var"], ["t"], name="bn"),
        helper.make_node("Add", ["t", "bias"], ["y"], name="uses_bias"),  # bias has another consumer
    ]
    proto = make_proto(nodes, [("x", F, (2, 3))], [("y", F, (2, 3))], params[1:])
    model = ir.from_proto(proto)
    assert BatchNormToAffine()(model).modified
    assert ops(model) == ["Mul", "Add", "Add"]  # the Constant node went with its only use
    assert "bias" in model.graph.initializers and "mean" not in model.graph.initializers
    x = rng.standard_normal((2, 3)).astype(np.float32)
    compare(proto, model, {"x": x})


def test_two_batchnorms_and_annotation_kept():
    params = bn_params(3)
    nodes = [
        helper.make_node("BatchNormalization", ["x", "scale", "bias", "mean", "var"], ["t"], name="bn1"),
        helper.make_node("BatchNormalization", ["t", "scale", "bias", "mean", "var"], ["y"], name="bn2", epsilon=0.1),
    ]
    proto = make_proto(nodes, [("x", F, (2, 3, 5))], [("y", F, (2, 3, 5))], params)
    model = ir.from_proto(proto)
    for node in model.graph:
        if node.name == "bn1":
            set_datatype(node.outputs[0], DataType.parse("FLOAT32"))
    assert BatchNormToAffine()(model).modified
    assert ops(model) == ["Mul", "Add", "Mul", "Add"]
    first_add = list(model.graph)[1]
    assert first_add.outputs[0].name == "t" and get_datatype(first_add.outputs[0]) == DataType.parse("FLOAT32")
    assert model.graph.initializers.keys() == {"bn1_factor", "bn1_shift", "bn2_factor", "bn2_shift"}
    compare(proto, model, {"x": rng.standard_normal((2, 3, 5)).astype(np.float32)})


def test_spatial_zero_parameters_used_as_they_are():
    c, d = 3, 4
    params = [
        ("scale", rng.standard_normal((c, d)).astype(np.float32)),
        ("bias", rng.standard_normal((c, d)).astype(np.float32)),
        ("mean", rng.standard_normal((c, d)).astype(np.float32)),
        ("var", (rng.random((c, d)) + 0.1).astype(np.float32)),
    ]
    node = helper.make_node("BatchNormalization", ["x", "scale", "bias", "mean", "var"], ["y"], name="bn", spatial=0)
    proto = make_proto([node], [("x", F, (2, c, d))], [("y", F, (2, c, d))], params, opset=7)
    model = ir.from_proto(proto)
    assert BatchNormToAffine()(model).modified
    assert model.graph.initializers["bn_factor"].const_value.shape.dims == (c, d)
    feeds = {"x": rng.standard_normal((2, c, d)).astype(np.float32)}
    before = ir.from_proto(proto)
    np.testing.assert_array_equal(execute(model, feeds)["y"], execute(before, feeds)["y"])
    np.testing.assert_allclose(run_onnxruntime(model, feeds)["y"], execute(before, feeds)["y"], rtol=1e-5, atol=1e-6)


# -- corpus -------------------------------------------------------------------------------
CORPUS = brevitas_corpus()


@pytest.mark.shared
@pytest.mark.parametrize("path", CORPUS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_corpus_outputs_unchanged(path):
    x = corpus_input(path)
    model = prepare_corpus_model(path, infer_shapes=True)  # infer-shapes: the BatchNorm input ranks
    expected = run_executor(model, x)
    had = ops(model).count("BatchNormalization")
    p = BatchNormToAffine()
    assert p(model).modified == bool(had)
    assert "BatchNormalization" not in ops(model), p.declined
    got = run_executor(model, x)
    assert_outputs_close(path, expected, got)
