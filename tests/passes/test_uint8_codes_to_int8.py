"""uint8-codes-to-int8: exact (onnxruntime before vs after), only where the codes stay within [0, 127]."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from qonnx_tools._ir import ir
from qonnx_tools.passes.uint8_codes_to_int8 import Uint8CodesToInt8
from qonnx_tools.runtime import ort_session


def _model(zp: int, clip: tuple[int, int] | None) -> onnx.ModelProto:
    inits = [numpy_helper.from_array(np.float32(0.1), "s"), numpy_helper.from_array(np.uint8(zp), "zp")]
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "zp"], ["q"], name="q")]
    last = "q"
    if clip is not None:
        inits += [numpy_helper.from_array(np.uint8(clip[0]), "lo"), numpy_helper.from_array(np.uint8(clip[1]), "hi")]
        nodes.append(helper.make_node("Clip", ["q", "lo", "hi"], ["c"], name="clip"))
        last = "c"
    nodes.append(helper.make_node("DequantizeLinear", [last, "s", "zp"], ["y"], name="dq"))
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [80])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [80])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


@pytest.mark.parametrize("zp, clip, moved", [
    (0, (0, 15), True), (5, (2, 127), True), (0, (0, 127), True),
    (0, None, False),            # codes use all of uint8
    (0, (0, 128), False),        # 128 is no int8 code
    (130, (0, 100), False),      # zero point beyond 127
])
def test_moved_only_where_the_codes_fit_and_always_exact(zp, clip, moved):
    proto = _model(zp, clip)
    model = ir.serde.deserialize_model(proto)
    pass_ = Uint8CodesToInt8()
    assert pass_(model).modified is moved
    after = ir.serde.serialize_model(model)
    zp_type = {t.name: t.data_type for t in after.graph.initializer}[after.graph.node[0].input[2]]
    assert zp_type == (TensorProto.INT8 if moved else TensorProto.UINT8)
    if not moved:
        assert len(pass_.declined) == 1
    onnx.checker.check_model(after, full_check=True)
    x = np.concatenate([np.linspace(-30, 30, 77), [0.05, -0.05, 12.75]]).astype(np.float32)
    np.testing.assert_array_equal(ort_session(after).run(["y"], {"x": x})[0], ort_session(proto).run(["y"], {"x": x})[0])
