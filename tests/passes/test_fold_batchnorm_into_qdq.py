"""fold-batchnorm-into-qdq: where it folds, onnxruntime (optimisations off) gives the original's outputs
bit for bit; where it cannot prove that, the layer is left alone with the reason."""

from __future__ import annotations

from collections import Counter

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from qonnx_tools._ir import ir
from qonnx_tools.passes.fold_batchnorm_into_qdq import FoldBatchnormIntoQdq
from qonnx_tools.runtime import ort_session

C_IN, C_OUT, HW = 3, 6, 6


def _model(seed: int, *, x_type=np.uint8, x_clip=(0, 15), w_bits=2, per_channel_w=True, bias=True,
           relu=False, y_type=np.int8, y_clip=(-2, 1), per_channel_y=False) -> onnx.ModelProto:
    """x -> Q -> [Clip] -> DQ -> Conv(DQ(w), b) -> BatchNormalization -> [Relu] -> Q -> [Clip] -> DQ -> y."""
    rng = np.random.default_rng(seed)
    w_max = 2 ** (w_bits - 1) - 1
    codes = rng.integers(-w_max, w_max + 1, size=(C_OUT, C_IN, 3, 3)).astype(np.int8)
    w_scale = (rng.uniform(0.02, 0.2, C_OUT) if per_channel_w else np.float64(0.07)).astype(np.float32)
    gamma = rng.uniform(0.3, 2.0, C_OUT) * rng.choice([-1, 1], C_OUT)
    inits = [
        numpy_helper.from_array(np.float32(0.05), "sx"), numpy_helper.from_array(x_type(0), "zx"),
        numpy_helper.from_array(codes, "w"), numpy_helper.from_array(w_scale, "sw"),
        numpy_helper.from_array(np.zeros(C_OUT if per_channel_w else (), np.int8), "zw"),
        numpy_helper.from_array(gamma.astype(np.float32), "gamma"),
        numpy_helper.from_array(rng.normal(0, 0.5, C_OUT).astype(np.float32), "beta"),
        numpy_helper.from_array(rng.normal(0, 0.3, C_OUT).astype(np.float32), "mean"),
        numpy_helper.from_array(rng.uniform(0.2, 2.0, C_OUT).astype(np.float32), "var"),
        numpy_helper.from_array((np.float32(rng.uniform(0.1, 0.4, C_OUT)) if per_channel_y else np.float32(0.25)), "sy"),
        numpy_helper.from_array(np.zeros(C_OUT, y_type) if per_channel_y else y_type(0), "zy"),
    ]
    nodes = [helper.make_node("QuantizeLinear", ["x", "sx", "zx"], ["qx"], name="qx")]
    last = "qx"
    if x_clip is not None:
        inits += [numpy_helper.from_array(x_type(x_clip[0]), "xlo"), numpy_helper.from_array(x_type(x_clip[1]), "xhi")]
        nodes.append(helper.make_node("Clip", ["qx", "xlo", "xhi"], ["cx"], name="cx"))
        last = "cx"
    conv_in = ["a", "wf"]
    if bias:
        inits.append(numpy_helper.from_array(rng.normal(0, 0.2, C_OUT).astype(np.float32), "b"))
        conv_in.append("b")
    nodes += [
        helper.make_node("DequantizeLinear", [last, "sx", "zx"], ["a"], name="dqx"),
        helper.make_node("DequantizeLinear", ["w", "sw", "zw"], ["wf"], name="dqw", axis=0),
        helper.make_node("Conv", conv_in, ["c"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c", "gamma", "beta", "mean", "var"], ["n"], name="bn"),
    ]
    last = "n"
    if relu:
        nodes.append(helper.make_node("Relu", ["n"], ["r"], name="relu"))
        last = "r"
    nodes.append(helper.make_node("QuantizeLinear", [last, "sy", "zy"], ["qy"], name="qy", axis=1))
    last = "qy"
    if y_clip is not None:
        inits += [numpy_helper.from_array(y_type(y_clip[0]), "ylo"), numpy_helper.from_array(y_type(y_clip[1]), "yhi")]
        nodes.append(helper.make_node("Clip", ["qy", "ylo", "yhi"], ["cy"], name="cy"))
        last = "cy"
    nodes.append(helper.make_node("DequantizeLinear", [last, "sy", "zy"], ["y"], name="dqy", axis=1))
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, C_IN, HW, HW])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, C_OUT, HW, HW])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def _fold(proto: onnx.ModelProto) -> tuple[onnx.ModelProto, FoldBatchnormIntoQdq]:
    model = ir.serde.deserialize_model(proto)
    pass_ = FoldBatchnormIntoQdq()
    pass_(model)
    return ir.serde.serialize_model(model), pass_


def _inputs(seed: int, n: int = 6) -> list[np.ndarray]:
    """Inputs spread over the input codes (and beyond them, where the quantizer saturates)."""
    rng = np.random.default_rng(seed)
    return [(rng.uniform(-0.3, 1.0, (4, C_IN, HW, HW)) * (1 + k)).astype(np.float32) for k in range(n)]


def _same_outputs(before: onnx.ModelProto, after: onnx.ModelProto, seed: int) -> None:
    a, b = ort_session(before), ort_session(after)
    for x in _inputs(seed):
        np.testing.assert_array_equal(b.run(["y"], {"x": x})[0], a.run(["y"], {"x": x})[0])


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**16), w_bits=st.sampled_from([2, 3, 4]), per_channel_w=st.booleans(),
       bias=st.booleans(), relu=st.booleans(),
       out=st.sampled_from([(np.int8, (-2, 1)), (np.uint8, (0, 15)), (np.int8, None), (np.uint8, (3, 9))]))
def test_folded_or_declined_and_always_exact(seed, w_bits, per_channel_w, bias, relu, out):
    proto = _model(seed, w_bits=w_bits, per_channel_w=per_channel_w, bias=bias, relu=relu,
                   y_type=out[0], y_clip=out[1])
    folded, pass_ = _fold(proto)
    ops = [n.op_type for n in folded.graph.node]
    if pass_.declined:
        (line,) = pass_.declined
        assert line.startswith("node 'conv' (Conv): ") and "BatchNormalization" in ops
    else:
        assert "BatchNormalization" not in ops
        onnx.checker.check_model(folded, full_check=True)
    _same_outputs(proto, folded, seed)


def test_these_layers_fold_and_become_qlinearconv(tmp_path):
    """Fixed cases that must fold (a test that could pass by declining everything proves nothing)."""
    folded_count = 0
    for seed in range(6):  # uint8 codes on both sides (onnxruntime fuses no Clip on int8 codes)
        proto = _model(seed, y_type=np.uint8, y_clip=(0, 15))
        folded, pass_ = _fold(proto)
        if not pass_.declined:
            folded_count += 1
            _same_outputs(proto, folded, seed)
            path = tmp_path / f"m{seed}.onnx"
            onnx.save(folded, path)
            optimized = tmp_path / f"m{seed}.opt.onnx"
            ort_session(str(path), optimize="optimized", optimized_model_path=str(optimized))
            kernels = Counter(n.op_type for n in onnx.load(optimized).graph.node)
            assert kernels["QLinearConv"] == 1 and kernels["Conv"] == 0, kernels
    assert folded_count >= 5


def test_weight_codes_stay_within_the_u8_s8_safe_range():
    folded, pass_ = _fold(_model(3, w_bits=4))
    assert pass_.declined == []
    conv = next(n for n in folded.graph.node if n.op_type == "Conv")
    dq = next(n for n in folded.graph.node if n.output[0] == conv.input[1])
    codes = numpy_helper.to_array(next(t for t in folded.graph.initializer if t.name == dq.input[0]))
    assert 7 * 2 <= np.abs(codes).max() <= 64  # scaled up for a finer bias grid, never beyond 64


def test_per_channel_output_quantizer_is_declined_with_the_reason():
    proto = _model(1, per_channel_y=True, y_type=np.uint8, y_clip=(0, 15))
    folded, pass_ = _fold(proto)
    (line,) = pass_.declined
    assert "per channel" in line and "QLinearConv and QGemm take one output scale" in line
    assert [n.op_type for n in folded.graph.node] == [n.op_type for n in proto.graph.node]


def _matmul_model(seed: int, trans_gemm: bool | None) -> onnx.ModelProto:
    """x -> Q(uint8) -> DQ -> MatMul (or Gemm, transB as given) with 3-bit weights -> BatchNormalization ->
    Q(uint8) -> Clip[0, 15] -> DQ."""
    rng = np.random.default_rng(seed)
    k, n = 16, 8
    codes = rng.integers(-3, 4, size=(n, k) if trans_gemm else (k, n)).astype(np.int8)
    inits = [numpy_helper.from_array(np.float32(0.05), "sx"), numpy_helper.from_array(np.uint8(0), "zx"),
             numpy_helper.from_array(codes, "w"), numpy_helper.from_array(np.float32(0.1), "sw"),
             numpy_helper.from_array(np.int8(0), "zw"),
             numpy_helper.from_array(rng.uniform(0.3, 2, n).astype(np.float32) * rng.choice([-1, 1], n).astype(np.float32), "gamma"),
             numpy_helper.from_array(rng.normal(0, 0.5, n).astype(np.float32), "beta"),
             numpy_helper.from_array(rng.normal(0, 0.3, n).astype(np.float32), "mean"),
             numpy_helper.from_array(rng.uniform(0.2, 2, n).astype(np.float32), "var"),
             numpy_helper.from_array(np.float32(0.2), "sy"), numpy_helper.from_array(np.uint8(0), "zy"),
             numpy_helper.from_array(np.uint8(0), "ylo"), numpy_helper.from_array(np.uint8(15), "yhi")]
    layer = (helper.make_node("MatMul", ["a", "wf"], ["c"], name="mm") if trans_gemm is None else
             helper.make_node("Gemm", ["a", "wf"], ["c"], name="mm", transB=int(trans_gemm)))
    nodes = [helper.make_node("QuantizeLinear", ["x", "sx", "zx"], ["qx"]),
             helper.make_node("DequantizeLinear", ["qx", "sx", "zx"], ["a"]),
             helper.make_node("DequantizeLinear", ["w", "sw", "zw"], ["wf"]), layer,
             helper.make_node("BatchNormalization", ["c", "gamma", "beta", "mean", "var"], ["nrm"], name="bn"),
             helper.make_node("QuantizeLinear", ["nrm", "sy", "zy"], ["qy"]),
             helper.make_node("Clip", ["qy", "ylo", "yhi"], ["cy"]),
             helper.make_node("DequantizeLinear", ["cy", "sy", "zy"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [32, k])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [32, n])], inits,
                              value_info=[helper.make_tensor_value_info("a", TensorProto.FLOAT, [32, k])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


@pytest.mark.parametrize("trans_gemm", [None, False, True])
def test_matmul_and_gemm_fold_into_gemm_exactly_and_become_qgemm(trans_gemm, tmp_path):
    folded_count = 0
    for seed in range(4):
        proto = _matmul_model(seed, trans_gemm)
        folded, pass_ = _fold(proto)
        a, b = ort_session(proto), ort_session(folded)
        rng = np.random.default_rng(seed)
        for x in [rng.uniform(-0.3, 1.0, (32, 16)).astype(np.float32) * (1 + k) for k in range(6)]:
            np.testing.assert_array_equal(b.run(["y"], {"x": x})[0], a.run(["y"], {"x": x})[0])
        if pass_.declined:
            continue
        folded_count += 1
        assert [n.op_type for n in folded.graph.node if n.op_type in ("MatMul", "Gemm", "BatchNormalization")] == ["Gemm"]
        path, optimized = tmp_path / f"m{seed}.onnx", tmp_path / f"o{seed}.onnx"
        onnx.save(folded, path)
        ort_session(str(path), optimize="optimized", optimized_model_path=str(optimized))
        assert Counter(n.op_type for n in onnx.load(optimized).graph.node)["QGemm"] == 1
    assert folded_count >= 3


def test_batchnorm_output_read_elsewhere_is_left_alone():
    proto = _model(2)
    proto.graph.output.append(helper.make_tensor_value_info("n", TensorProto.FLOAT, [4, C_OUT, HW, HW]))
    folded, pass_ = _fold(proto)
    assert "BatchNormalization" in [n.op_type for n in folded.graph.node]
    assert len(pass_.declined) == 1 and "other readers" in pass_.declined[0]


#: model -> BatchNormalizations folded (= layers that become QLinearConv / QGemm)
_CORPUS = {"bnn_cnv_2w2a": 8, "residual_shared_quant": 3, "batchnorm_between": 2, "bnn_sfc_1w2a": 3,
           "bnn_tfc_2w2a": 3}


@pytest.mark.shared
@pytest.mark.parametrize("name", sorted(_CORPUS))
def test_corpus_qcdq_folds_and_equals_the_qonnx_original(shared, name, tmp_path):
    """convert --to qcdq (ort profile) on real Brevitas models: the folded Convs run as QLinearConv and
    onnxruntime gives the executor's outputs on the QONNX original (its shipped input and random ones),
    with optimisations off and with them on."""
    from qonnx_tools.convert import convert
    from qonnx_tools.executor import execute
    from qonnx_tools.model_io import load
    from qonnx_tools.runtime import random_inputs, run_onnxruntime

    folder = shared / "models" / "brevitas" / name
    original = load(folder / "qonnx.onnx")
    model = load(folder / "qonnx.onnx")
    bn_before = sum(n.op_type == "BatchNormalization" for n in model.graph)
    result = convert(model, to="qcdq")
    assert bn_before - sum(n.op_type == "BatchNormalization" for n in model.graph) == _CORPUS[name]
    assert any("BatchNormalization folded into" in note for note in result.notes)
    io = np.load(folder / "io.npz")
    feeds = [{original.graph.inputs[0].name: io["input"]}] + [random_inputs(original, seed=s) for s in (1, 2)]
    for inputs in feeds:
        expected = execute(original, inputs)
        for profile in ("off", "optimized"):
            got = run_onnxruntime(model, inputs, optimize=profile)
            for out_name, value in got.items():
                np.testing.assert_array_equal(value, expected[out_name], err_msg=f"{name} {profile}")
    path = tmp_path / "m.onnx"
    onnx.save(ir.to_proto(model), path)
    ort_session(str(path), optimize="optimized", optimized_model_path=str(tmp_path / "opt.onnx"))
    kernels = Counter(n.op_type for n in onnx.load(tmp_path / "opt.onnx").graph.node)
    assert kernels["QLinearConv"] + kernels["QGemm"] >= _CORPUS[name], kernels
    assert kernels["Conv"] + kernels["Gemm"] + kernels["FusedConv"] + kernels["FusedGemm"] == 0 or name == "residual_shared_quant"


def test_below_opset_13_nothing_is_folded_and_the_reason_names_the_flag():
    """Per-channel DequantizeLinear (axis) exists from opset 13 on; the fold would write an invalid file."""
    proto = _model(0, y_type=np.uint8, y_clip=(0, 15))
    proto.opset_import[0].version = 12
    folded, pass_ = _fold(proto)
    (line,) = pass_.declined
    assert "needs ai.onnx opset 13 (the model has 12; convert with --opset 13)" in line
    assert "BatchNormalization" in [n.op_type for n in folded.graph.node]


def test_codes_read_both_clipped_and_unclipped_are_proved_over_the_wider_range():
    """The output codes feed a Clip[0, 2] -> DQ and, directly, a second DQ: the fold must keep every code the
    unclipped reader sees (the container's range), not only those within the Clip."""
    for seed in range(4):
        proto = _model(seed, y_type=np.uint8, y_clip=(0, 2))
        proto.graph.node.append(helper.make_node("DequantizeLinear", ["qy", "sy", "zy"], ["y_raw"], name="dq_raw"))
        proto.graph.output.append(helper.make_tensor_value_info("y_raw", TensorProto.FLOAT, [4, C_OUT, HW, HW]))
        folded, _ = _fold(proto)
        a, b = ort_session(proto), ort_session(folded)
        for x in _inputs(seed):
            for name in ("y", "y_raw"):
                np.testing.assert_array_equal(b.run([name], {"x": x})[0], a.run([name], {"x": x})[0],
                                              err_msg=f"seed {seed} {name}")
