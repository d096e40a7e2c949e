"""positive-batchnorm-before-sign: exact (executor before vs after); afterwards every channel's scale is positive."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from qonnx_tools._ir import ir
from qonnx_tools.executor import Executor
from qonnx_tools.model_io import load
from qonnx_tools.passes import run_passes
from qonnx_tools.passes.positive_batchnorm_before_sign import PositiveBatchnormBeforeSign
from qonnx_tools.testing import shared_dir

D = "qonnx.custom_op.general"


def _model(*, narrow: int = 1, reader: str = "BipolarQuant") -> ir.Model:
    """x (4, 16) -> MatMul(Quant(W, 4 bit, narrow)) -> BatchNormalization (some gamma < 0) -> reader -> y."""
    rng = np.random.default_rng(5)
    gamma = rng.uniform(0.5, 2, 8).astype(np.float32) * np.array([1, -1, 1, -1, -1, 1, 1, -1], np.float32)
    inits = [numpy_helper.from_array(rng.normal(size=(16, 8)).astype(np.float32), "W"),
             numpy_helper.from_array(np.float32(0.25), "ws"), numpy_helper.from_array(np.float32(0), "wz"),
             numpy_helper.from_array(np.float32(4), "wb"), numpy_helper.from_array(gamma, "gamma"),
             numpy_helper.from_array(rng.normal(size=8).astype(np.float32), "beta"),
             numpy_helper.from_array(rng.normal(size=8).astype(np.float32), "mean"),
             numpy_helper.from_array(rng.uniform(0.5, 2, 8).astype(np.float32), "var"),
             numpy_helper.from_array(np.float32(1.0), "s")]
    last = (helper.make_node("BipolarQuant", ["bn", "s"], ["y"], name="sign", domain=D) if reader == "BipolarQuant"
            else helper.make_node("Relu", ["bn"], ["y"], name="relu"))
    nodes = [helper.make_node("Quant", ["W", "ws", "wz", "wb"], ["wq"], name="wq", domain=D, signed=1, narrow=narrow),
             helper.make_node("MatMul", ["x", "wq"], ["h"], name="mm"),
             helper.make_node("BatchNormalization", ["h", "gamma", "beta", "mean", "var"], ["bn"], name="bn"), last]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 16])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 8])], inits)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid(D, 1)])
    model = ir.serde.deserialize_model(proto)
    run_passes(model, "infer-shapes")  # the pass needs the MatMul's output rank
    return model


def _gamma(model: ir.Model) -> np.ndarray:
    (bn,) = [n for n in model.graph if n.op_type == "BatchNormalization"]
    return bn.inputs[1].const_value.numpy()


def test_negative_channels_are_negated_exactly():
    model = _model()
    xs = np.random.default_rng(0).normal(size=(50, 4, 16)).astype(np.float32) * 3
    before = [Executor(model).run({"x": x})["y"] for x in xs]
    assert PositiveBatchnormBeforeSign()(model).modified
    assert (_gamma(model) > 0).all()
    for x, want in zip(xs, before):
        np.testing.assert_array_equal(Executor(model).run({"x": x})["y"], want)


@pytest.mark.parametrize("kwargs, reason", [
    ({"narrow": 0}, "not symmetric"),        # -(-8) is not a 4-bit code: negating would change the weights
    ({"reader": "Relu"}, None),              # not before a sign: not a candidate (quiet)
])
def test_left_alone(kwargs, reason):
    model = _model(**kwargs)
    pass_ = PositiveBatchnormBeforeSign()
    assert not pass_(model).modified
    assert (_gamma(model) < 0).any()
    if reason is None:
        assert not pass_.declined
    else:
        assert any(reason in d for d in pass_.declined), pass_.declined


@pytest.mark.shared
def test_tfc_1w1a_after_bipolar_weights():
    """TFC_1W1A (QONNX zoo): 12 of 192 channels have negative BatchNormalization scales before a sign."""
    if shared_dir() is None:
        pytest.skip("../shared not available")
    model = load(shared_dir() / "models" / "qonnx-model-zoo/tfc/TFC_1W1A.onnx")
    run_passes(model, "cleanup,gemm-to-matmul,move-transpose-into-weight-quant,cleanup,unshare-initializers,"
                      "bipolar-weights-to-int2")
    executor = Executor(model)
    (name,) = executor.input_names
    xs = np.random.default_rng(0).uniform(0, 1, (8, 1, 1, 28, 28)).astype(np.float32)
    before = [executor.run({name: x}) for x in xs]
    negative = sum(int((_bn < 0).sum()) for _bn in (n.inputs[1].const_value.numpy() for n in model.graph
                                                       if n.op_type == "BatchNormalization"))
    assert negative == 12
    assert PositiveBatchnormBeforeSign()(model).modified
    for n in model.graph:
        if n.op_type == "BatchNormalization":
            assert (n.inputs[1].const_value.numpy() >= 0).all()
    after = Executor(model)
    for x, want in zip(xs, before):
        got = after.run({name: x})
        for key, value in want.items():
            np.testing.assert_array_equal(got[key], value)


def test_a_rank_3_matmul_is_left_alone():
    """BatchNormalization normalises axis 1; on a (N, T, C) MatMul output that is T, not the weight's columns."""
    model = _model()
    (mm,) = [n for n in model.graph if n.op_type == "MatMul"]
    mm.outputs[0].shape = ir.Shape([4, 2, 8])
    pass_ = PositiveBatchnormBeforeSign()
    assert not pass_(model).modified
    assert any("rank 2" in d for d in pass_.declined), pass_.declined
