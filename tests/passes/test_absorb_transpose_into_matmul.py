"""absorb-transpose-into-matmul: the NHWC->NCHW Transpose before Flatten -> MatMul goes into W's rows.

Expected values come from onnxruntime on the original (standard-op) graph, or from the
executor on the original model for the corpus (QONNX ops).
"""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper

from qonnx_tools._ir import ir
from qonnx_tools.domains import QONNX
from qonnx_tools.executor import execute
from qonnx_tools.passes import run_passes
from qonnx_tools.passes.absorb_transpose_into_matmul import AbsorbTransposeIntoMatMul
from qonnx_tools.runtime import run_onnxruntime
from qonnx_tools.testing import brevitas_models, make_proto, prepare_corpus_model, quant_node, run_executor

F = TensorProto.FLOAT
rng = np.random.default_rng(11)


def flatten_matmul(x_shape=(2, 3, 4, 5), flatten="Flatten", quantized=False):
    """x (N, H, W, C) -> Transpose to NCHW -> Flatten/Reshape -> MatMul(W or Quant(W))."""
    features = int(np.prod(x_shape[1:]))
    w = rng.standard_normal((features, 6)).astype(np.float32)
    rank = len(x_shape)
    nodes = [helper.make_node("Transpose", ["x"], ["t"], name="t", perm=[0, rank - 1, *range(1, rank - 1)])]
    inits = [("W", w)]
    if flatten == "Flatten":
        nodes.append(helper.make_node("Flatten", ["t"], ["f"], name="flatten"))
    else:
        nodes.append(helper.make_node("Reshape", ["t", "shape"], ["f"], name="reshape"))
        inits.append(("shape", np.array([x_shape[0], -1], np.int64)))
    weight = "W"
    if quantized:  # per-row scale: must be permuted with the rows
        inits += [("s", rng.uniform(0.05, 0.2, (features, 1)).astype(np.float32)),
                  ("z", np.zeros((), np.float32)), ("b", np.array(4.0, np.float32))]
        nodes.append(quant_node("W", "s", "z", "b", "Wq", name="q"))
        weight = "Wq"
    nodes.append(helper.make_node("MatMul", ["f", weight], ["y"], name="mm"))
    return make_proto(nodes, [("x", F, x_shape)], [("y", F, (x_shape[0], 6))], inits,
                      extra_opsets={QONNX: 1} if quantized else None)


@pytest.mark.parametrize("x_shape", [(2, 3, 4, 5), (1, 7, 3)])
@pytest.mark.parametrize("flatten", ["Flatten", "Reshape"])
def test_transpose_goes_into_the_weight_rows(x_shape, flatten):
    proto = flatten_matmul(x_shape, flatten)
    feeds = {"x": rng.standard_normal(x_shape).astype(np.float32)}
    expected = run_onnxruntime(ir.from_proto(proto), feeds)["y"]
    model = ir.from_proto(proto)
    run_passes(model, "infer-shapes")
    assert AbsorbTransposeIntoMatMul()(model).modified
    assert "Transpose" not in [n.op_type for n in model.graph]
    np.testing.assert_allclose(execute(model, feeds)["y"], expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(run_onnxruntime(model, feeds)["y"], expected, rtol=1e-5, atol=1e-5)


def test_quantized_weight_with_per_row_scale():
    proto = flatten_matmul(quantized=True)
    feeds = {"x": rng.standard_normal((2, 3, 4, 5)).astype(np.float32)}
    expected = execute(ir.from_proto(proto), feeds)["y"]
    model = ir.from_proto(proto)
    run_passes(model, "infer-shapes")
    assert AbsorbTransposeIntoMatMul()(model).modified
    assert [n.op_type for n in model.graph] == ["Flatten", "Quant", "MatMul"]
    np.testing.assert_allclose(execute(model, feeds)["y"], expected, rtol=1e-5, atol=1e-6)


def test_declines_when_the_transposed_tensor_has_other_readers():
    proto = flatten_matmul()
    proto.graph.node.append(helper.make_node("Relu", ["t"], ["r"], name="relu"))
    proto.graph.output.append(helper.make_tensor_value_info("r", F, None))
    model = ir.from_proto(proto)
    run_passes(model, "infer-shapes")
    p = AbsorbTransposeIntoMatMul()
    assert not p(model).modified
    assert p.declined == ["node 't' (Transpose): not read by one Flatten to (N, features)"]


@pytest.mark.shared
@pytest.mark.parametrize("name", ["bnn_cnv_2w2a", "maxpool_quanttensor"])
def test_corpus_after_channels_last(name):
    folder = next((d for d in brevitas_models() if d.name == name), None)
    if folder is None:
        pytest.skip(f"{name} not in the corpus")
    model = prepare_corpus_model(folder / "qonnx.onnx", infer_shapes=True)
    x = np.load(folder / "io.npz")["input"]
    before = run_executor(model, x)
    run_passes(model, "gemm-to-matmul,move-transpose-into-weight-quant,infer-shapes,to-channels-last")
    p = AbsorbTransposeIntoMatMul()
    assert p(model).modified
    after = run_executor(model, x)
    for key, value in before.items():
        np.testing.assert_allclose(after[key], value, rtol=1e-5, atol=1e-5 * max(1.0, float(np.abs(value).max())))
