"""remove-relu-before-quantize: exact (onnxruntime, optimisations off, before vs after), only where the
quantizer's codes are clamped at or above the zero point."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from qonnx_tools._ir import ir
from qonnx_tools.passes.remove_relu_before_quantize import RemoveReluBeforeQuantize
from qonnx_tools.runtime import ort_session


def _model(dtype, zp, clip=None) -> onnx.ModelProto:
    """x -> Relu -> QuantizeLinear(dtype, zp) -> [Clip] -> DequantizeLinear -> y."""
    inits = [numpy_helper.from_array(np.float32(0.1), "s"), numpy_helper.from_array(np.array(zp, dtype), "zp")]
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="relu"),
             helper.make_node("QuantizeLinear", ["r", "s", "zp"], ["q"], name="q")]
    last = "q"
    if clip is not None:
        inits += [numpy_helper.from_array(np.array(clip[0], dtype), "lo"), numpy_helper.from_array(np.array(clip[1], dtype), "hi")]
        nodes.append(helper.make_node("Clip", ["q", "lo", "hi"], ["c"], name="clip"))
        last = "c"
    nodes.append(helper.make_node("DequantizeLinear", [last, "s", "zp"], ["y"], name="dq"))
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [64])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [64])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def _apply(proto):
    model = ir.serde.deserialize_model(proto)
    pass_ = RemoveReluBeforeQuantize()
    modified = pass_(model).modified
    return ir.serde.serialize_model(model), modified, pass_.declined


@pytest.mark.parametrize("dtype, zp, clip, removed", [
    (np.uint8, 0, None, True),            # the container's minimum is the zero point
    (np.uint8, 0, (0, 15), True),
    (np.int8, -128, None, True),
    (np.int8, 0, (0, 7), True),           # Clip's lower bound is the zero point
    (np.int8, 3, (5, 7), True),           # ... or above it
    (np.int8, 0, None, False),            # negative codes would reach DequantizeLinear
    (np.uint8, 4, (0, 15), False),        # codes 0..3 are below the zero point
])
def test_removed_only_where_exact(dtype, zp, clip, removed):
    proto = _model(dtype, zp, clip)
    after, modified, declined = _apply(proto)
    assert modified is removed
    assert ("Relu" in [n.op_type for n in after.graph.node]) is not removed
    if not removed:
        assert len(declined) == 1 and "below the zero point" in declined[0]
    x = np.concatenate([np.linspace(-3, 3, 61), [-0.0, -0.04, -0.05]]).astype(np.float32)
    np.testing.assert_array_equal(ort_session(after).run(["y"], {"x": x})[0], ort_session(proto).run(["y"], {"x": x})[0])


def test_relu_with_another_reader_stays():
    proto = _model(np.uint8, 0)
    proto.graph.output.append(helper.make_tensor_value_info("r", TensorProto.FLOAT, [64]))
    after, modified, _ = _apply(proto)
    assert not modified and "Relu" in [n.op_type for n in after.graph.node]
