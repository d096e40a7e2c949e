"""bipolar-weights-to-int2: exact (executor before vs after) on generated graphs and real binary models."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from qonnx_tools._ir import ir
from qonnx_tools.executor import Executor
from qonnx_tools.model_io import load
from qonnx_tools.passes import run_passes
from qonnx_tools.passes.bipolar_weights_to_int2 import BipolarWeightsToInt2
from qonnx_tools.testing import shared_dir

D = "qonnx.custom_op.general"


def _model(*, extra_reader: bool = False) -> ir.Model:
    """x (2, 16) -> BipolarQuant -> MatMul(BipolarQuant(W, 0.5)) -> y; W holds exact zeros (they mean +0.5)."""
    rng = np.random.default_rng(3)
    w = rng.integers(-2, 3, size=(16, 8)).astype(np.float32)  # zeros included
    inits = [numpy_helper.from_array(w, "W"), numpy_helper.from_array(np.float32(0.5), "ws"),
             numpy_helper.from_array(np.float32(1.0), "xs")]
    nodes = [helper.make_node("BipolarQuant", ["x", "xs"], ["xb"], name="act", domain=D),
             helper.make_node("BipolarQuant", ["W", "ws"], ["wb"], name="wq", domain=D),
             helper.make_node("MatMul", ["xb", "wb"], ["y"], name="mm")]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 8])]
    if extra_reader:
        nodes.append(helper.make_node("Identity", ["wb"], ["w_out"], name="peek"))
        outputs.append(helper.make_tensor_value_info("w_out", TensorProto.FLOAT, [16, 8]))
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 16])], outputs,
                              inits)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid(D, 1)])
    return ir.serde.deserialize_model(proto)


def test_bipolar_weights_become_a_2bit_narrow_quant_with_the_same_outputs():
    model = _model()
    x = np.random.default_rng(0).normal(size=(2, 16)).astype(np.float32)
    before = Executor(model).run({"x": x})["y"]
    assert BipolarWeightsToInt2()(model).modified
    (quant,) = [n for n in model.graph if n.op_type == "Quant"]
    assert quant.attributes.get_int("narrow") == 1 and quant.attributes.get_int("signed") == 1
    assert float(quant.inputs[3].const_value.numpy()) == 2.0
    # the spec's BipolarQuant: +scale where w >= 0 (zeros included), -scale elsewhere
    w = np.random.default_rng(3).integers(-2, 3, size=(16, 8)).astype(np.float32)
    np.testing.assert_array_equal(quant.inputs[0].const_value.numpy(), np.where(w >= 0, 0.5, -0.5))
    assert [n.op_type for n in model.graph].count("BipolarQuant") == 1  # the activation stays
    np.testing.assert_array_equal(Executor(model).run({"x": x})["y"], before)
    # and what the two bipolar factors mean, computed independently: sign(x) . sign(W) * 0.5
    np.testing.assert_array_equal(before, np.where(x >= 0, 1.0, -1.0) @ np.where(w >= 0, 0.5, -0.5))


def test_weights_with_another_reader_are_left_alone():
    model = _model(extra_reader=True)
    pass_ = BipolarWeightsToInt2()
    assert not pass_(model).modified
    assert any("reader other than" in d for d in pass_.declined), pass_.declined


BINARY = ["qonnx-model-zoo/tfc/TFC_1W1A.onnx", "brevitas/bnn_tfc_1w1a/qonnx.onnx", "brevitas/bnn_sfc_1w2a/qonnx.onnx",
          "brevitas/binary_ternary/qonnx.onnx"]


@pytest.mark.shared
@pytest.mark.parametrize("rel", BINARY)
def test_real_binary_models_keep_their_outputs(rel):
    if shared_dir() is None:
        pytest.skip("../shared not available")
    model = load(shared_dir() / "models" / rel)
    run_passes(model, "cleanup,gemm-to-matmul,move-transpose-into-weight-quant,cleanup")
    executor = Executor(model)
    (name,) = executor.input_names
    shape = [d if isinstance(d, int) else 1 for d in model.graph.inputs[0].shape]
    x = np.random.default_rng(0).uniform(0, 1, shape).astype(np.float32)
    before = executor.run({name: x})
    assert BipolarWeightsToInt2()(model).modified
    after = Executor(model).run({name: x})
    for key, value in before.items():
        np.testing.assert_array_equal(after[key], value)
