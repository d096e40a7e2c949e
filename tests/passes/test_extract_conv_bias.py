"""extract-conv-bias: Conv/ConvTranspose of every rank, constant and dynamic biases, declines, honesty, corpus."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from qonnx_tools._ir import ir
from qonnx_tools.annotations import get_datatype, set_datatype
from qonnx_tools.datatypes import DataType
from qonnx_tools.executor import execute
from qonnx_tools.passes import registered_passes
from qonnx_tools.passes.extract_conv_bias import ExtractConvBias
from qonnx_tools.runtime import run_onnxruntime
from qonnx_tools.testing import assert_outputs_close, brevitas_corpus, corpus_input, make_proto, prepare_corpus_model, run_executor

F = TensorProto.FLOAT
rng = np.random.default_rng(2)


def ops(model):
    return [n.op_type for n in model.graph]


def compare(proto, model, feeds):
    before = ir.from_proto(proto)
    ex0, ex1 = execute(before, feeds), execute(model, feeds)
    rt0, rt1 = run_onnxruntime(before, feeds), run_onnxruntime(model, feeds)
    for name in ex0:
        np.testing.assert_allclose(ex1[name], ex0[name], rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(rt1[name], rt0[name], rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(rt1[name], ex1[name], rtol=1e-5, atol=1e-5)


def conv_case(op_type, spatial, *, group=1, c_in=4, c_out=6):
    x_shape = (2, c_in) + (5,) * spatial
    if op_type == "Conv":
        w = rng.standard_normal((c_out, c_in // group) + (3,) * spatial).astype(np.float32)
        out_shape = (2, c_out) + (3,) * spatial
        channels = c_out
    else:
        w = rng.standard_normal((c_in, c_out // group) + (3,) * spatial).astype(np.float32)
        out_shape = (2, c_out) + (7,) * spatial
        channels = c_out
    b = rng.standard_normal(channels).astype(np.float32)
    node = helper.make_node(op_type, ["x", "W", "B"], ["y"], name="conv", group=group)
    return node, x_shape, out_shape, w, b


def test_registered():
    assert registered_passes()["extract-conv-bias"] is ExtractConvBias
    assert ExtractConvBias.summary


@pytest.mark.parametrize("op_type", ["Conv", "ConvTranspose"])
@pytest.mark.parametrize("spatial", [1, 2, 3])
@pytest.mark.parametrize("group", [1, 2])
def test_constant_bias_becomes_add(op_type, spatial, group):
    node, x_shape, out_shape, w, b = conv_case(op_type, spatial, group=group)
    proto = make_proto([node], [("x", F, x_shape)], [("y", F, out_shape)], [("W", w), ("B", b)])
    model = ir.from_proto(proto)
    p = ExtractConvBias()
    assert p(model).modified and p.declined == []
    assert ops(model) == [op_type, "Add"]
    conv, add = list(model.graph)
    assert conv.name == "conv" and len(conv.inputs) == 2 and conv.attributes["group"].value == group
    bias = add.inputs[1]
    assert bias.const_value.shape.dims == (1, len(b)) + (1,) * spatial
    np.testing.assert_array_equal(bias.const_value.numpy().ravel(), b)
    assert "B" not in model.graph.initializers
    assert add.outputs[0].name == "y" and add.outputs[0].is_graph_output()
    assert conv.outputs[0].shape == ir.Shape(out_shape)
    compare(proto, model, {"x": rng.standard_normal(x_shape).astype(np.float32)})
    assert not ExtractConvBias()(model).modified


def test_dynamic_bias_gets_a_reshape():
    node, x_shape, out_shape, w, b = conv_case("Conv", 2)
    proto = make_proto([node], [("x", F, x_shape), ("B", F, b.shape)], [("y", F, out_shape)], [("W", w)])
    model = ir.from_proto(proto)
    assert ExtractConvBias()(model).modified
    assert ops(model) == ["Reshape", "Conv", "Add"]
    reshape = next(iter(model.graph))
    np.testing.assert_array_equal(reshape.inputs[1].const_value.numpy(), [1, -1, 1, 1])
    assert reshape.outputs[0].shape == ir.Shape([1, 6, 1, 1])
    compare(proto, model, {"x": rng.standard_normal(x_shape).astype(np.float32), "B": b})


def test_qcdq_style_dequantized_bias():
    node, x_shape, out_shape, w, b = conv_case("Conv", 2)
    q_bias = np.round(b / 0.01).astype(np.int32)
    nodes = [helper.make_node("DequantizeLinear", ["Bq", "s"], ["B"], name="dq"), node]
    proto = make_proto(
        nodes, [("x", F, x_shape)], [("y", F, out_shape)], [("W", w), ("Bq", q_bias), ("s", np.float32(0.01))]
    )
    model = ir.from_proto(proto)
    assert ExtractConvBias()(model).modified
    assert ops(model) == ["DequantizeLinear", "Reshape", "Conv", "Add"]
    compare(proto, model, {"x": rng.standard_normal(x_shape).astype(np.float32)})


def test_no_bias_is_unmodified():
    w = rng.standard_normal((3, 2, 3, 3)).astype(np.float32)
    proto = make_proto(
        [helper.make_node("Conv", ["x", "W"], ["y"])], [("x", F, (1, 2, 5, 5))], [("y", F, (1, 3, 3, 3))], [("W", w)]
    )
    model = ir.from_proto(proto)
    p = ExtractConvBias()
    assert not p(model).modified and p.declined == []


def test_shared_bias_one_initializer_and_names_unique():
    w = rng.standard_normal((3, 3, 1, 1)).astype(np.float32)
    b = rng.standard_normal(3).astype(np.float32)
    nodes = [
        helper.make_node("Conv", ["x", "W", "B"], ["t"], name="c1"),
        helper.make_node("Conv", ["t", "W", "B"], ["y"], name="c2"),
        helper.make_node("Relu", ["x"], ["B_bcast"], name="name_clash"),
    ]
    proto = make_proto(
        nodes, [("x", F, (1, 3, 4, 4))], [("y", F, (1, 3, 4, 4)), ("B_bcast", F, (1, 3, 4, 4))], [("W", w), ("B", b)]
    )
    model = ir.from_proto(proto)
    assert ExtractConvBias()(model).modified
    adds = [n for n in model.graph if n.op_type == "Add"]
    assert adds[0].inputs[1] is adds[1].inputs[1]
    assert adds[0].inputs[1].name == "B_bcast_1"
    names = [v.name for v in model.graph.initializers.values()] + [o.name for n in model.graph for o in n.outputs]
    assert len(names) == len(set(names))
    compare(proto, model, {"x": rng.standard_normal((1, 3, 4, 4)).astype(np.float32)})


def test_unknown_rank_declines():
    nodes = [
        helper.make_node("Relu", ["w"], ["W"]),
        helper.make_node("Relu", ["x"], ["xr"]),
        helper.make_node("Conv", ["xr", "W", "B"], ["y"], name="conv"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", F, None), helper.make_tensor_value_info("w", F, None)],
        [helper.make_tensor_value_info("y", F, None)],
        [numpy_helper.from_array(np.ones(3, np.float32), "B")],
    )
    model = ir.from_proto(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]))
    p = ExtractConvBias()
    assert not p(model).modified
    assert p.declined == ["node 'conv' (Conv): rank unknown (run infer-shapes first)"]


def test_legacy_broadcast_opset_declines():
    node, x_shape, out_shape, w, b = conv_case("Conv", 2)
    proto = make_proto([node], [("x", F, x_shape)], [("y", F, out_shape)], [("W", w), ("B", b)], opset=6)
    model = ir.from_proto(proto)
    p = ExtractConvBias()
    assert not p(model).modified
    assert "opset < 7" in p.declined[0]


def test_annotations_and_metadata_kept():
    node, x_shape, out_shape, w, b = conv_case("Conv", 2)
    proto = make_proto([node], [("x", F, x_shape)], [("y", F, out_shape)], [("W", w), ("B", b)])
    model = ir.from_proto(proto)
    set_datatype(model.graph.outputs[0], DataType.parse("FLOAT32"))
    next(iter(model.graph)).metadata_props["origin"] = "layer1"
    assert ExtractConvBias()(model).modified
    conv, add = list(model.graph)
    assert get_datatype(add.outputs[0]) == DataType.parse("FLOAT32")
    assert conv.metadata_props["origin"] == "layer1"


# -- corpus -------------------------------------------------------------------------------
CORPUS = brevitas_corpus()


def _biased(model):
    return sum(
        1
        for n in model.graph
        if n.op_type in ("Conv", "ConvTranspose") and len(n.inputs) > 2 and n.inputs[2] is not None
    )


@pytest.mark.shared
@pytest.mark.parametrize("path", CORPUS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_corpus_outputs_unchanged(path):
    x = corpus_input(path)
    # infer-shapes: QCDQ weights come out of DequantizeLinear, so their rank comes from inference
    model = prepare_corpus_model(path, infer_shapes=True)
    expected = run_executor(model, x)
    had = _biased(model)
    p = ExtractConvBias()
    assert p(model).modified == bool(had)
    assert _biased(model) == 0, p.declined
    got = run_executor(model, x)
    assert_outputs_close(path, expected, got)
