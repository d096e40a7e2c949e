"""Max calibration through our executor against onnxruntime's own static quantization (MinMax, symmetric,
per tensor, int8) on the same float model and data.

onnxruntime's symmetric int8 range is [-127, 127] (``get_qmin_qmax_for_qType(INT8, symmetric=True)``),
so its scale is max|x| / 127, pytorch_quantization's convention too: the scales must agree to float32
rounding. onnxruntime gives a Relu's output its input's quantization parameters (it measures h, not
Relu(h)); ours measures each tensor, so the Relu output is compared only through that convention.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from qonnx_tools._ir import ir
from qonnx_tools.errors import BadInputError
from qonnx_tools.quantize import MaxCalibrator, QuantSpec, observe, quant_params


def _float_mlp() -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.normal(size=(16, 32)).astype(np.float32), "w1"),
             numpy_helper.from_array(rng.normal(size=(32, 10)).astype(np.float32), "w2")]
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h"], name="mm1"),
             helper.make_node("Relu", ["h"], ["r"], name="relu"),
             helper.make_node("MatMul", ["r", "w2"], ["y"], name="mm2")]
    graph = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 16])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 10])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _batches():
    rng = np.random.default_rng(1)
    return [rng.normal(size=(8, 16)).astype(np.float32) * (1 + i) for i in range(6)]


def _onnxruntime_scales(tmp_path) -> dict[str, float]:
    from qonnx_tools.testing import ort_quantize_static_int8

    src, dst = tmp_path / "float.onnx", tmp_path / "qdq.onnx"
    onnx.save(_float_mlp(), src)
    ort_quantize_static_int8(src, dst, [{"x": b} for b in _batches()])
    model = onnx.load(dst)
    consts = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    return {n.input[0]: float(consts[n.input[1]]) for n in model.graph.node if n.op_type == "QuantizeLinear"}


def test_max_scales_equal_onnxruntime_minmax_symmetric(tmp_path):
    theirs = _onnxruntime_scales(tmp_path)
    model = ir.serde.deserialize_model(_float_mlp())
    calibrators = {name: MaxCalibrator() for name in ("x", "h", "r", "y")}
    assert observe(model, _batches(), calibrators) == 6
    ours = {name: float(quant_params(c.amax(), QuantSpec(bits=8)).scale) for name, c in calibrators.items()}
    assert ours["x"] == pytest.approx(theirs["x"], rel=1e-6)
    assert ours["h"] == pytest.approx(theirs["h"], rel=1e-6)
    assert theirs["r"] == theirs["h"]  # the Relu convention above: onnxruntime measures h for r
    assert ours["y"] == pytest.approx(theirs["y_QuantizeLinear_Input"], rel=1e-6)  # its name for the output y
    w1 = numpy_helper.to_array(_float_mlp().graph.initializer[0])
    relu_max = np.maximum(np.concatenate(_batches()).astype(np.float64) @ w1, 0).max()  # NumPy: max |Relu(h)|
    assert ours["r"] == pytest.approx(relu_max / 127, rel=1e-6)


def test_observe_refuses_unknown_tensors_and_no_data():
    model = ir.serde.deserialize_model(_float_mlp())
    with pytest.raises(BadInputError, match="not computed"):
        observe(model, _batches(), {"nope": MaxCalibrator()})
    with pytest.raises(BadInputError, match="no calibration batches"):
        observe(model, [], {"x": MaxCalibrator()})
