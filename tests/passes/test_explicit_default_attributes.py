"""explicit-default-attributes: the attributes written are ONNX's defaults, so outputs stay the same
(onnxruntime, which applies the spec's defaults itself, before vs after)."""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from qonnx_tools._ir import ir
from qonnx_tools.passes.explicit_default_attributes import ExplicitDefaultAttributes
from qonnx_tools.runtime import ort_session


def _model(auto_pad: str | None = None):
    w = numpy_helper.from_array(np.random.default_rng(0).normal(size=(4, 3, 3, 3)).astype(np.float32), "w")
    conv = {"auto_pad": auto_pad} if auto_pad else {}
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv", **conv),  # no kernel_shape either
             helper.make_node("MaxPool", ["c"], ["y"], name="pool", kernel_shape=[2, 2])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [w])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def _run(proto, x):
    return ort_session(proto).run(None, {"x": x})[0]


def test_defaults_written_and_outputs_unchanged():
    proto = _model()
    x = np.random.default_rng(1).normal(size=(1, 3, 8, 8)).astype(np.float32)
    model = ir.serde.deserialize_model(proto)
    assert ExplicitDefaultAttributes()(model).modified
    conv, pool = list(model.graph)
    assert {k: list(v.value) for k, v in conv.attributes.items()} == {
        "kernel_shape": [3, 3], "strides": [1, 1], "pads": [0, 0, 0, 0], "dilations": [1, 1]}
    assert list(pool.attributes.get_ints("strides")) == [1, 1] and "dilations" not in pool.attributes
    np.testing.assert_array_equal(_run(ir.serde.serialize_model(model), x), _run(proto, x))


def test_auto_pad_is_left_alone():
    model = ir.serde.deserialize_model(_model("SAME_UPPER"))
    pass_ = ExplicitDefaultAttributes()
    pass_(model)
    conv = next(iter(model.graph))
    assert "pads" not in conv.attributes and any("auto_pad" in d for d in pass_.declined)


def test_an_omitted_resize_roi_becomes_a_one_element_constant():
    scales = numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales")
    node = helper.make_node("Resize", ["x", "", "scales"], ["y"], name="up", mode="nearest")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [scales])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model = ir.serde.deserialize_model(proto)
    assert ExplicitDefaultAttributes()(model).modified
    (resize,) = list(model.graph)
    assert resize.inputs[1] is not None and resize.inputs[1].const_value.numpy().tolist() == [0.0]
    x = np.random.default_rng(1).normal(size=(1, 3, 8, 8)).astype(np.float32)
    np.testing.assert_array_equal(_run(ir.serde.serialize_model(model), x), _run(proto, x))


def test_rounding_mode_is_each_ops_own_default():
    """QONNX spec: Quant rounds to nearest (ROUND) by default, Trunc floors (FLOOR)."""
    from qonnx_tools.domains import QONNX

    inits = [numpy_helper.from_array(np.float32(v), n) for n, v in
             (("s", 0.5), ("z", 0.0), ("b", 8.0), ("ob", 4.0))]
    nodes = [helper.make_node("Quant", ["x", "s", "z", "b"], ["q"], name="quant", domain=QONNX, signed=1, narrow=0),
             helper.make_node("Trunc", ["q", "s", "z", "b", "ob"], ["y"], name="trunc", domain=QONNX)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])], inits)
    model = ir.serde.deserialize_model(helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid(QONNX, 1)]))
    from qonnx_tools.executor import Executor

    x = np.array([-3.3, -0.7, 1.6, 2.49], np.float32) * 9
    before = Executor(model).run({"x": x})["y"]
    assert ExplicitDefaultAttributes()(model).modified
    quant, trunc = list(model.graph)
    assert quant.attributes.get_string("rounding_mode") == "ROUND"
    assert trunc.attributes.get_string("rounding_mode") == "FLOOR"
    np.testing.assert_array_equal(Executor(model).run({"x": x})["y"], before)
