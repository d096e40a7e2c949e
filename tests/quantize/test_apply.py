"""quantize(): where quantizers go, with which parameters, and what the quantized model computes.

Expected numbers come from NumPy transcriptions of pytorch_quantization's fake quantization (amax = max
|x| over the calibration data, scale = amax / max_bound, codes = clip(round_half_even(x / scale))), not
from our calibrators; the quantized model's numerics are also checked in onnxruntime after QCDQ.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from qonnx_tools._ir import ir
from qonnx_tools.convert import convert
from qonnx_tools.domains import QONNX
from qonnx_tools.errors import BadInputError
from qonnx_tools.executor import Executor
from qonnx_tools.quantize import LayerRule, QuantizeConfig, QuantSpec, load_config, quantize
from qonnx_tools.runtime import run_onnxruntime

RNG = np.random.default_rng(7)
W1 = (RNG.normal(size=(4, 3, 3, 3)) * 0.3).astype(np.float32)
B1 = RNG.normal(size=(4,)).astype(np.float32)
W2 = (RNG.normal(size=(144, 10)) * 0.1).astype(np.float32)
B2 = RNG.normal(size=(10,)).astype(np.float32)
BATCHES = [RNG.normal(size=(8, 3, 8, 8)).astype(np.float32) * (1 + i / 4) for i in range(4)]


def _conv_mlp() -> onnx.ModelProto:
    """Conv(+bias) -> Relu -> Reshape -> MatMul -> Add(bias): a MatMul bias the way exporters write it."""
    inits = [numpy_helper.from_array(a, n) for a, n in ((W1, "w1"), (B1, "b1"), (W2, "w2"), (B2, "b2"))]
    inits.append(numpy_helper.from_array(np.array([-1, 144], np.int64), "shape"))
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c"], name="conv", kernel_shape=[3, 3]),
             helper.make_node("Relu", ["c"], ["r"], name="relu"),
             helper.make_node("Reshape", ["r", "shape"], ["f"], name="flat"),
             helper.make_node("MatMul", ["f", "w2"], ["m"], name="fc"),
             helper.make_node("Add", ["m", "b2"], ["y"], name="fc_bias")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 10])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _fake(x, amax, bits, unsigned=False, narrow=True):
    """pytorch_quantization's fake quantization at a given amax (per tensor or broadcast per channel)."""
    max_bound = 2 ** bits - 1 if unsigned else 2 ** (bits - 1) - 1
    lo = 0 if unsigned else (-max_bound if narrow else -max_bound - 1)
    scale = (np.asarray(amax, np.float32) / np.float32(max_bound)).astype(np.float32)
    return (np.clip(np.rint(x / scale), lo, max_bound) * scale).astype(np.float32), scale


def _float_reference(x, bits, per_channel):
    """The quantized network computed by hand in NumPy (ORT runs the float ops on fake-quantized tensors)."""
    calib = np.concatenate(BATCHES)
    xq, sx = _fake(x, np.abs(calib).max(), bits, narrow=False)
    amax_w1 = np.abs(W1).max(axis=(1, 2, 3), keepdims=True) if per_channel else np.abs(W1).max()
    w1q, sw1 = _fake(W1, amax_w1, bits)
    b1q = (np.rint(B1 / (sx * sw1.reshape(-1))) * (sx * sw1.reshape(-1))).astype(np.float32)
    ort = lambda proto, feeds: run_onnxruntime(ir.serde.deserialize_model(proto), feeds)  # noqa: E731

    def conv(inp, w, b):
        node = helper.make_node("Conv", ["x", "w", "b"], ["y"], kernel_shape=[3, 3])
        g = helper.make_graph([node], "c", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(inp.shape))],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
        return ort(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), {"x": inp})["y"]

    calib_f = np.maximum(conv(calib, W1, B1), 0).reshape(-1, 144)  # calibration sees the float network
    f = np.maximum(conv(xq, w1q, b1q), 0).reshape(-1, 144)
    fq, sf = _fake(f, calib_f.max(), bits, unsigned=True)  # a Relu output: unsigned under "auto"
    amax_w2 = np.abs(W2).max(axis=0, keepdims=True) if per_channel else np.abs(W2).max()
    w2q, sw2 = _fake(W2, amax_w2, bits)
    b2_scale = (sf * sw2.reshape(-1)).astype(np.float32)
    b2q = np.rint(B2 / b2_scale) * b2_scale
    return (fq @ w2q + b2q).astype(np.float32)


@pytest.mark.parametrize("bits, per_channel", [(8, False), (8, True), (4, True), (3, False)])
def test_quantized_network_equals_a_numpy_transcription_and_onnxruntime(bits, per_channel):
    model = ir.serde.deserialize_model(_conv_mlp())
    result = quantize(model, BATCHES, weights=bits, acts=bits, per_channel=per_channel)
    x = RNG.normal(size=(5, 3, 8, 8)).astype(np.float32)
    ours = Executor(model).run({"x": x})["y"]
    expected = _float_reference(x, bits, per_channel)
    # the same codes, so the outputs differ only by float32 summation order (measured: one ulp at |y| ~ 6);
    # one flipped code would move y by ~2e-3 at 8 bits, an unquantized output bias by up to 9e-5
    np.testing.assert_allclose(ours, expected, atol=4 * float(np.spacing(np.abs(expected).max())), rtol=0)
    kinds = sorted((t.kind, t.tensor) for t in result.tensors)
    assert kinds == [("activation", "f"), ("activation", "x"), ("bias", "b1"), ("bias", "b2"), ("weight", "w1"),
                     ("weight", "w2")]
    assert result.samples == 32 and result.batches == 4
    proto = ir.serde.serialize_model(model)
    qcdq = ir.serde.deserialize_model(proto)
    convert(qcdq, "qcdq")
    assert {n.domain for n in qcdq.graph} <= {""}
    np.testing.assert_allclose(run_onnxruntime(qcdq, {"x": x})["y"], ours, atol=2e-6, rtol=0)


def _nodes(model, op_type):
    return [n for n in model.graph if n.op_type == op_type and n.domain == QONNX]


def _scale_of(model, tensor):
    quant = next(n for n in model.graph if n.domain == QONNX and n.inputs[0].name == tensor)
    return quant.inputs[1].const_value.numpy()


def _one_op_model(op, weight, **attrs):
    shapes = {"Conv": [2, 3, 5, 5], "ConvTranspose": [2, 3, 5, 5], "MatMul": [2, weight.shape[0]],
              "Gemm": [2, weight.shape[1] if attrs.get("transB") else weight.shape[0]]}
    node = helper.make_node(op, ["x", "w"], ["y"], name="op", **attrs)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, shapes[op])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(weight, "w")])
    model = ir.serde.deserialize_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))
    return model, shapes[op]


@pytest.mark.parametrize("op, weight_shape, attrs, axis", [
    ("Conv", (6, 3, 3, 3), {}, 0),
    ("ConvTranspose", (3, 4, 3, 3), {}, 1),
    ("ConvTranspose", (3, 2, 3, 3), {"group": 3}, None),  # grouped: per tensor (the axis mixes groups)
    ("MatMul", (7, 5), {}, 1),
    ("Gemm", (7, 5), {}, 1),
    ("Gemm", (5, 7), {"transB": 1}, 0),
])
def test_per_channel_weight_scales_follow_each_ops_output_channel_axis(op, weight_shape, attrs, axis):
    weight = RNG.normal(size=weight_shape).astype(np.float32)
    model, shape = _one_op_model(op, weight, **attrs)
    quantize(model, [RNG.normal(size=shape).astype(np.float32)], weights=8, acts=8, per_channel=True)
    if axis is None:
        expected = np.abs(weight).max() / 127
    else:
        expected = np.abs(weight).max(axis=tuple(a for a in range(weight.ndim) if a != axis), keepdims=True) / 127
    np.testing.assert_allclose(_scale_of(model, "w"), expected.astype(np.float32), rtol=1e-7)


def test_unsigned_auto_on_off_and_narrow():
    proto = _conv_mlp()
    scales = {}
    for mode in ("auto", "on", "off"):
        model = ir.serde.deserialize_model(proto)
        quantize(model, BATCHES, unsigned_acts=mode)
        quants = {n.inputs[0].name: n for n in _nodes(model, "Quant")}
        scales[mode] = (quants["x"].attributes["signed"].value, quants["f"].attributes["signed"].value)
        assert quants["x"].attributes["narrow"].value == 0 and quants["w1"].attributes["narrow"].value == 1
    assert scales == {"auto": (1, 0), "on": (0, 0), "off": (1, 1)}  # x has negatives, f (after Relu) has none
    model = ir.serde.deserialize_model(proto)
    quantize(model, BATCHES, narrow=True)
    assert {n.inputs[0].name: n.attributes["narrow"].value for n in _nodes(model, "Quant")}["x"] == 1


def test_one_bit_is_bipolar_with_the_mean_magnitude():
    model = ir.serde.deserialize_model(_conv_mlp())
    result = quantize(model, BATCHES, weights=1, acts=8, per_channel=True)
    bipolar = {n.inputs[0].name: n for n in _nodes(model, "BipolarQuant")}
    assert set(bipolar) == {"w1", "w2"}
    np.testing.assert_allclose(bipolar["w1"].inputs[1].const_value.numpy(),
                               np.abs(W1).mean(axis=(1, 2, 3), keepdims=True), rtol=1e-6)
    assert next(t for t in result.tensors if t.tensor == "w1").clipped is None


def test_layer_rules_exclude_and_a_toml_file(tmp_path):
    text = 'weights = 6\nacts = 6\nmethod = "percentile"\n\n[[layer]]\nop = "Conv"\nweights = 4\n\n' \
           '[[layer]]\nmatch = "fc"\nskip = true\n'
    (tmp_path / "plan.toml").write_text(text)
    config = load_config(tmp_path / "plan.toml")
    assert config.layers == (LayerRule(op="Conv", weights=4), LayerRule(match="fc", skip=True))
    model = ir.serde.deserialize_model(_conv_mlp())
    result = quantize(model, BATCHES, config)
    bits = {t.tensor: t.bits for t in result.tensors}
    assert bits == {"x": 6, "w1": 4, "b1": 32}  # fc left float: neither its weight nor its input
    assert result.float_nodes == ["fc"]
    model = ir.serde.deserialize_model(_conv_mlp())
    assert quantize(model, BATCHES, exclude=("co*",)).float_nodes == ["conv"]
    (tmp_path / "bad.json").write_text('{"weights": 4, "layer": [{"name": "conv"}]}')
    with pytest.raises(BadInputError, match=r"bad.json: layer rule 1: unknown key 'name'"):
        load_config(tmp_path / "bad.json")
    (tmp_path / "bad.toml").write_text('acts = 0\n')
    with pytest.raises(BadInputError, match=r"bad.toml: acts=0"):
        load_config(tmp_path / "bad.toml")


W_RES = (RNG.normal(size=(6, 6)) * 0.4).astype(np.float32)


def _residual() -> onnx.ModelProto:
    w = numpy_helper.from_array(W_RES, "w")
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"], name="fc"),
             helper.make_node("Relu", ["h"], ["r"], name="relu"),
             helper.make_node("Add", ["r", "x"], ["y"], name="join")]
    graph = helper.make_graph(nodes, "res", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 6])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 6])], [w])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_joins_and_outputs_are_quantized_once_keeping_the_output_name():
    batches = [RNG.normal(size=(16, 6)).astype(np.float32) for _ in range(3)]
    model = ir.serde.deserialize_model(_residual())
    result = quantize(model, batches, joins=True, outputs=True)
    kinds = sorted(t.kind for t in result.tensors)
    assert kinds == ["activation", "join", "weight"]  # the join is the output: one quantizer, not two
    assert [v.name for v in model.graph.outputs] == ["y"]
    assert model.graph.outputs[0].producer().op_type == "Quant"
    whole = np.concatenate(batches)
    y_float = np.maximum(whole @ W_RES, 0) + whole
    join = next(t for t in result.tensors if t.kind == "join")
    assert join.amax == pytest.approx(np.abs(y_float).max(), rel=1e-6)


def test_computed_weights_fold_and_initializer_inputs_become_fixed():
    """A weight made by ConstantOfShape from an initializer listed as a graph input (the onnx light models)."""
    shape = numpy_helper.from_array(np.array([4, 3], np.int64), "wshape")
    nodes = [helper.make_node("ConstantOfShape", ["wshape"], ["w"], value=numpy_helper.from_array(np.array([0.02], np.float32))),
             helper.make_node("MatMul", ["x", "w"], ["y"], name="fc")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4]),
                                           helper.make_tensor_value_info("wshape", TensorProto.INT64, [2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])], [shape])
    model = ir.serde.deserialize_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 9)]))
    result = quantize(model, [RNG.normal(size=(2, 4)).astype(np.float32)])
    assert [t.kind for t in result.tensors] == ["activation", "weight"]
    assert [v.name for v in model.graph.inputs] == ["x"]


def test_quantspec_arguments_and_bad_options():
    model = ir.serde.deserialize_model(_conv_mlp())
    quantize(model, BATCHES, weights=QuantSpec(bits=5, axis=(0,)), acts=QuantSpec(bits=7, unsigned=True, pow2=True))
    quants = {n.inputs[0].name: n for n in _nodes(model, "Quant")}
    assert quants["w1"].inputs[1].const_value.numpy().shape == (4, 1, 1, 1)
    assert quants["x"].attributes["signed"].value == 0
    assert float(quants["x"].inputs[3].const_value.numpy()) == 7
    scale = float(quants["x"].inputs[1].const_value.numpy())
    assert scale == 2.0 ** np.round(np.log2(scale))
    with pytest.raises(BadInputError, match="method"):
        quantize(ir.serde.deserialize_model(_conv_mlp()), BATCHES, method="kl")
    with pytest.raises(BadInputError, match="no calibration batches"):
        quantize(ir.serde.deserialize_model(_conv_mlp()), [])
    assert QuantizeConfig().updated(acts=None) == QuantizeConfig()


def test_a_generator_of_batches_goes_through_the_progress_bar():
    """A generator has no length: the bar runs without a total instead of failing on len()."""
    from qonnx_tools.cli._progress import progress_bar

    model = ir.serde.deserialize_model(_conv_mlp())
    result = quantize(model, (b for b in BATCHES), progress=progress_bar("calibrating"))
    assert (result.batches, result.samples) == (4, 32)
