"""dequantize-rescaled-constants: exact (the executor before vs after) on a generated bias and on
maxpool_quanttensor's two quantized biases."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from qonnx_tools._ir import ir
from qonnx_tools.executor import Executor
from qonnx_tools.model_io import load
from qonnx_tools.passes import run_passes
from qonnx_tools.passes.dequantize_rescaled_constants import DequantizeRescaledConstants
from qonnx_tools.testing import shared_dir

D = "qonnx.custom_op.general"


def _model(bias_scale: float) -> ir.Model:
    """x (2, 3) + Quant(b, bias_scale, 0, 8 bit) -> y; and the same Quant kind on MatMul weights (kept)."""
    rng = np.random.default_rng(2)
    inits = [numpy_helper.from_array(rng.normal(size=3).astype(np.float32), "b"),
             numpy_helper.from_array(np.float32(bias_scale), "bs"), numpy_helper.from_array(np.float32(0), "z"),
             numpy_helper.from_array(np.float32(8), "bits"),
             numpy_helper.from_array(rng.normal(size=(3, 3)).astype(np.float32), "W"),
             numpy_helper.from_array(np.float32(bias_scale), "ws")]
    nodes = [helper.make_node("Quant", ["W", "ws", "z", "bits"], ["wq"], name="wq", domain=D, signed=1, narrow=0,
                              rounding_mode="ROUND"),
             helper.make_node("MatMul", ["x", "wq"], ["h"], name="mm"),
             helper.make_node("Quant", ["b", "bs", "z", "bits"], ["bq"], name="bq", domain=D, signed=1, narrow=0,
                              rounding_mode="ROUND"),
             helper.make_node("Add", ["h", "bq"], ["y"], name="add")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])], inits)
    return ir.serde.deserialize_model(helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid(D, 1)]))


def test_a_rescaled_bias_becomes_its_values_and_weights_keep_their_quantizer():
    model = _model(0.03)
    x = np.random.default_rng(0).normal(size=(2, 3)).astype(np.float32)
    before = Executor(model).run({"x": x})["y"]
    assert DequantizeRescaledConstants()(model).modified
    assert [n.name for n in model.graph if n.op_type == "Quant"] == ["wq"]
    np.testing.assert_array_equal(Executor(model).run({"x": x})["y"], before)
    # the bias values: the spec's Quant, computed independently
    b = np.random.default_rng(2).normal(size=3).astype(np.float32)
    (add,) = [n for n in model.graph if n.op_type == "Add"]
    np.testing.assert_allclose(add.inputs[1].const_value.numpy(), np.clip(np.rint(b / 0.03), -128, 127) * 0.03,
                               rtol=1e-6)


def test_a_power_of_two_scale_is_left_alone():
    model = _model(0.125)
    pass_ = DequantizeRescaledConstants()
    assert not pass_(model).modified and not pass_.declined


@pytest.mark.shared
def test_maxpool_quanttensor_is_unchanged_in_value():
    if shared_dir() is None:
        pytest.skip("../shared not available")
    folder = shared_dir() / "models/brevitas/maxpool_quanttensor"
    model = load(folder / "qonnx.onnx")
    run_passes(model, "cleanup")
    executor = Executor(model)
    (name,) = executor.input_names
    x = np.load(folder / "io.npz")["input"]
    before = executor.run({name: x})
    assert DequantizeRescaledConstants()(model).modified
    after = Executor(model).run({name: x})
    for key, value in before.items():
        np.testing.assert_array_equal(after[key], value)
