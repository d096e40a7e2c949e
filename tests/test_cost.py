"""``inference_cost`` / ``qonnx cost`` checked against MAC counts computed by hand."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from qonnx_tools._ir import ir
from qonnx_tools.cli.main import main
from qonnx_tools.cost import inference_cost
from qonnx_tools.domains import QONNX
from qonnx_tools.model_io import load
from qonnx_tools.testing import quant_node, shared_models

F = TensorProto.FLOAT
ZOO_TFC = shared_models("qonnx-model-zoo/tfc/TFC_2W2A.onnx")


def _quant(name, x, bits, signed=1, narrow=0):
    return [
        quant_node(x, f"{name}_s", f"{name}_z", f"{name}_b", f"{name}_q", signed=signed, narrow=narrow, name=name),
    ], [
        numpy_helper.from_array(np.array(0.5, np.float32), f"{name}_s"),
        numpy_helper.from_array(np.array(0.0, np.float32), f"{name}_z"),
        numpy_helper.from_array(np.array(float(bits), np.float32), f"{name}_b"),
    ]


def small_conv(group=1, quantized=True):
    """x (1, 4, 8, 8) -> [Quant 3b unsigned] -> Conv (6 out, 3x3, stride 1, pad 1, group) with W [Quant 4b] -> y (1, 6, 8, 8)."""
    rng = np.random.default_rng(0)
    w = rng.standard_normal((6, 4 // group, 3, 3)).astype(np.float32)
    nodes, inits = [], [numpy_helper.from_array(w, "W"), numpy_helper.from_array(np.zeros(6, np.float32), "B")]
    x_in, w_in = "x", "W"
    if quantized:
        n1, i1 = _quant("qa", "x", 3, signed=0)
        n2, i2 = _quant("qw", "W", 4)
        nodes += n1 + n2
        inits += i1 + i2
        x_in, w_in = "qa_q", "qw_q"
    nodes.append(helper.make_node("Conv", [x_in, w_in, "B"], ["y"], name="conv", kernel_shape=[3, 3], pads=[1, 1, 1, 1],
                                  group=group))
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", F, [1, 4, 8, 8])],
                              [helper.make_tensor_value_info("y", F, None)], inits)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid(QONNX, 1)])
    return ir.from_proto(proto)


def test_small_conv_macs_bitops_memory():
    report = inference_cost(small_conv())
    # N=1, M=6, out 8x8, C/group=4, kernel 3x3: 1*6*64*4*9
    assert report.total_macs == 13824
    (layer,) = report.layers
    assert (layer.act_bits, layer.weight_bits) == (3.0, 4.0)
    assert (layer.act_type, layer.weight_type) == ("UINT3", "INT4")
    assert report.total_bitops == 13824 * 12
    assert report.weight_memory_bits == 6 * 4 * 9 * 4
    assert report.by_pairing == {"UINT3 x INT4": {"macs": 13824, "bitops": 13824 * 12.0}}
    # activations: quant output (1,4,8,8) at 3 bits + conv output (1,6,8,8) float32
    assert report.activation_memory_bits == 256 * 3 + 384 * 32
    assert report.unsupported == []


def test_grouped_conv_and_float():
    report = inference_cost(small_conv(group=2, quantized=False))
    assert report.total_macs == 1 * 6 * 64 * 2 * 9
    assert report.layers[0].act_bits == report.layers[0].weight_bits == 32.0
    assert report.layers[0].act_type == "FLOAT"


def test_matmul_gemm_convtranspose_and_unsupported():
    nodes = [
        helper.make_node("MatMul", ["x", "W1"], ["h"], name="mm"),  # (2,3,5)@(5,7): 2*3*5*7
        helper.make_node("Gemm", ["h2d", "W2"], ["g"], name="gemm", transB=1),  # (6,7) x (4,7)^T: 6*7*4
        helper.make_node("Reshape", ["h", "shape"], ["h2d"], name="rs"),
        helper.make_node("ConvTranspose", ["img", "WT"], ["up"], name="ct", strides=[2, 2]),
        helper.make_node("Einsum", ["x", "x"], ["e"], name="es", equation="bij,bij->b"),
    ]
    nodes = [nodes[0], nodes[2], nodes[1], nodes[3], nodes[4]]
    inits = [
        numpy_helper.from_array(np.ones((5, 7), np.float32), "W1"),
        numpy_helper.from_array(np.ones((4, 7), np.float32), "W2"),
        numpy_helper.from_array(np.array([6, 7], np.int64), "shape"),
        numpy_helper.from_array(np.ones((3, 2, 2, 2), np.float32), "WT"),  # C=3 in, M=2 out, 2x2 kernel
    ]
    graph = helper.make_graph(
        nodes, "g",
        [helper.make_tensor_value_info("x", F, [2, 3, 5]), helper.make_tensor_value_info("img", F, [1, 3, 4, 4])],
        [helper.make_tensor_value_info(n, F, None) for n in ("g", "up", "e")], inits)
    model = ir.from_proto(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]))
    report = inference_cost(model)
    macs = {layer.node: layer.macs for layer in report.layers}
    assert macs == {"mm": 2 * 3 * 5 * 7, "gemm": 6 * 7 * 4, "ct": 1 * 3 * 16 * 2 * 4}
    assert report.total_macs == sum(macs.values())
    assert report.unsupported == ["es (Einsum): cost of this op is not modelled"]


def test_tfc_bundled():
    # models/tfc/TFC_2W2A.onnx: MatMul weights 784x64, 64x64, 64x64, 64x10 (checked with onnx below)
    proto = onnx.load("models/tfc/TFC_2W2A.onnx")
    dims = sorted(tuple(i.dims) for i in proto.graph.initializer if len(i.dims) == 2)
    assert dims == [(10, 64), (64, 64), (64, 64), (64, 784)]
    report = inference_cost(load("models/tfc/TFC_2W2A.onnx"))
    assert report.total_macs == 784 * 64 + 64 * 64 + 64 * 64 + 64 * 10 == 59008
    assert report.total_bitops == 59008 * 2 * 2
    assert report.weight_memory_bits == 59008 * 2
    assert set(report.by_pairing) == {"INT2 x INT2"}
    assert report.batch == 1 and report.macs_per_sample == 59008


def test_batch_reported():
    from qonnx_tools.passes import run_passes

    model = load("models/tfc/TFC_2W2A.onnx")
    run_passes(model, "change-batch-size{batch=3}")
    report = inference_cost(model)
    assert report.batch == 3 and report.total_macs == 3 * 59008 and report.macs_per_sample == 59008


@pytest.mark.shared
@pytest.mark.parametrize("name", ["maxpool_quanttensor", "trunc_avgpool_floor", "qop_cnn_s8", "asymmetric_zero_point"])
def test_qonnx_and_qcdq_files_cost_the_same(shared, name):
    folder = shared / "models" / "brevitas" / name
    a, b = inference_cost(load(folder / "qonnx.onnx")), inference_cost(load(folder / "qcdq.onnx"))
    assert a.total_macs == b.total_macs > 0
    assert a.by_pairing == b.by_pairing  # bits from Quant nodes == bits from QuantizeLinear/Clip/DequantizeLinear
    assert a.unsupported == b.unsupported == []


@pytest.mark.shared
def test_channels_last_conv_costs_the_same(shared):
    from qonnx_tools.passes import run_passes

    model = load(shared / "models" / "brevitas" / "bnn_cnv_2w2a" / "qonnx.onnx")
    before = inference_cost(model)
    run_passes(model, "remove-static-inputs,infer-shapes,to-channels-last")
    after = inference_cost(model)
    assert after.total_macs == before.total_macs and after.by_pairing == before.by_pairing
    # CNV: convs 3-64-64-128-128-256-256 on 32x32 (valid 3x3, two 2x2 pools) + FC 256-512-512-10, per sample
    per_sample = (30 * 30 * 64 * 3 * 9 + 28 * 28 * 64 * 64 * 9 + 12 * 12 * 128 * 64 * 9 + 10 * 10 * 128 * 128 * 9
                  + 3 * 3 * 256 * 128 * 9 + 1 * 1 * 256 * 256 * 9 + 256 * 512 + 512 * 512 + 512 * 10)
    assert after.macs_per_sample == per_sample


@pytest.mark.shared
@pytest.mark.skipif(not ZOO_TFC, reason="zoo TFC not present")
def test_tfc_zoo():
    report = inference_cost(load(ZOO_TFC[0]))
    assert report.total_macs == 59008  # 784*64 + 64*64 + 64*64 + 64*10 per sample (batch 1)
    assert [layer.macs for layer in report.layers] == [50176, 4096, 4096, 640]


def test_cli(tmp_path, capsys):
    path = tmp_path / "conv.onnx"
    onnx.save(ir.to_proto(small_conv()), path)
    before = path.read_bytes()
    assert main(["cost", str(path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["total_macs"] == 13824
    assert main(["cost", str(path)]) == 0
    out = capsys.readouterr().out
    assert "total MACs: 13,824" in out and "UINT3 x INT4" in out
    assert path.read_bytes() == before
    assert main(["cost", str(tmp_path / "missing.onnx")]) == 2
