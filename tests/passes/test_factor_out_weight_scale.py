"""factor-out-weight-scale: per-channel weight scales move behind the layer; outputs equal up to float32
reassociation (the executor before vs after, on generated graphs and on kwsmlp_w3a3)."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from qonnx_tools._ir import ir
from qonnx_tools.executor import Executor
from qonnx_tools.model_io import load
from qonnx_tools.passes import run_passes
from qonnx_tools.passes.factor_out_weight_scale import FactorOutWeightScale
from qonnx_tools.testing import shared_dir

D = "qonnx.custom_op.general"


def _model(scale: np.ndarray, *, conv: bool = False) -> ir.Model:
    """x -> MatMul (or Conv, NCHW, no bias) with Quant(W, scale, 0, 4 bit, narrow) weights -> y."""
    rng = np.random.default_rng(7)
    w_shape, x_shape, y_shape = ((3, 2, 3, 3), [1, 2, 6, 6], [1, 3, 4, 4]) if conv else ((5, 3), [2, 5], [2, 3])
    inits = [numpy_helper.from_array(rng.normal(size=w_shape).astype(np.float32), "W"),
             numpy_helper.from_array(scale.astype(np.float32), "ws"), numpy_helper.from_array(np.float32(0), "wz"),
             numpy_helper.from_array(np.float32(4), "wb")]
    nodes = [helper.make_node("Quant", ["W", "ws", "wz", "wb"], ["wq"], name="wq", domain=D, signed=1, narrow=1,
                              rounding_mode="ROUND"),
             helper.make_node("Conv" if conv else "MatMul", ["x", "wq"], ["y"], name="layer")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, y_shape)], inits)
    model = ir.serde.deserialize_model(helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid(D, 1)]))
    run_passes(model, "infer-shapes")
    return model


@pytest.mark.parametrize("conv", [False, True])
def test_per_channel_scale_moves_behind_the_layer(conv):
    scale = np.array([0.3, 0.07, 0.11]).reshape((3, 1, 1, 1) if conv else (1, 3))
    model = _model(scale, conv=conv)
    x = np.random.default_rng(0).normal(size=[d for d in model.graph.inputs[0].shape]).astype(np.float32)
    before = Executor(model).run({"x": x})["y"]
    assert FactorOutWeightScale()(model).modified
    ops = [n.op_type for n in model.graph]
    assert ops == ["Quant", "Conv" if conv else "MatMul", "Mul"]
    (quant,) = [n for n in model.graph if n.op_type == "Quant"]
    assert float(quant.inputs[1].const_value.numpy()) == 1.0
    codes = quant.inputs[0].const_value.numpy()
    assert np.array_equal(codes, np.round(codes)) and np.abs(codes).max() <= 7  # 4-bit narrow codes
    after = Executor(model).run({"x": x})["y"]
    assert model.graph.outputs[0].name == "y"
    np.testing.assert_allclose(after, before, rtol=1e-6, atol=1e-6 * float(np.abs(before).max()))


@pytest.mark.parametrize("scale, reason", [
    (np.array([[0.3]]), None),                     # per tensor: hls4ml handles it; not a candidate
    (np.array([[0.25, 0.5, 0.125]]), None),        # powers of two: not a candidate
    (np.array([[0.3], [0.2], [0.1], [0.4], [0.5]]), "another axis"),  # varies along the reduction axis
])
def test_left_alone(scale, reason):
    model = _model(scale)
    pass_ = FactorOutWeightScale()
    assert not pass_(model).modified
    assert (not pass_.declined) if reason is None else any(reason in d for d in pass_.declined), pass_.declined


@pytest.mark.shared
def test_kwsmlp_keeps_its_outputs():
    if shared_dir() is None:
        pytest.skip("../shared not available")
    model = load(shared_dir() / "models/qonnx-model-zoo/kws/kwsmlp_w3a3.onnx")
    run_passes(model, "cleanup,gemm-to-matmul,move-transpose-into-weight-quant,cleanup")
    executor = Executor(model)
    (name,) = executor.input_names
    shape = [d if isinstance(d, int) else 1 for d in model.graph.inputs[0].shape]
    xs = np.random.default_rng(0).uniform(-1, 1, [8] + shape).astype(np.float32)
    before = [executor.run({name: x}) for x in xs]
    assert FactorOutWeightScale()(model).modified
    assert sum(n.op_type == "Mul" for n in model.graph) >= 3
    after = Executor(model)
    for x, want in zip(xs, before):
        for key, value in after.run({name: x}).items():
            np.testing.assert_allclose(value, want[key], rtol=0, atol=1e-6 * float(np.abs(want[key]).max()))
