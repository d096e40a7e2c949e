"""to-channels-last / to-channels-first: handmade graphs and the corpus conv models, executor bit-exact."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from qonnx_tools._ir import ir
from qonnx_tools.domains import CHANNELS_LAST, QONNX
from qonnx_tools.errors import BadInputError
from qonnx_tools.executor import Executor
from qonnx_tools.model_io import load
from qonnx_tools.passes import make_pass, registered_passes, run_passes
from qonnx_tools.passes.channels_last import ToChannelsFirst, ToChannelsLast
from qonnx_tools.testing import brevitas_models

F = TensorProto.FLOAT
MODES = ["qonnx", "transpose"]
RNG = np.random.default_rng(0)


class Builder:
    def __init__(self):
        self.nodes, self.inits, self.k = [], [], 0

    def const(self, array, name=None):
        self.k += 1
        name = name or f"c{self.k}"
        self.inits.append(numpy_helper.from_array(np.asarray(array, np.float32), name))
        return name

    def node(self, op, inputs, domain="", **attrs):
        self.k += 1
        out = f"v{self.k}"
        self.nodes.append(helper.make_node(op, inputs, [out], name=f"{op.lower()}{self.k}", domain=domain, **attrs))
        return out

    def conv(self, x, cin, cout, k=3, bias=True, dims=2, **attrs):
        w = self.const(RNG.standard_normal((cout, cin) + (k,) * dims) * 0.3)
        ins = [x, w] + ([self.const(RNG.standard_normal(cout))] if bias else [])
        return self.node("Conv", ins, kernel_shape=[k] * dims, pads=[k // 2] * (2 * dims))

    def quant(self, x, scale, bits=4.0):
        return self.node("Quant", [x, self.const(scale), self.const(0.0), self.const(bits)], domain=QONNX,
                         signed=1, narrow=0, rounding_mode="ROUND")

    def model(self, inputs, outputs):
        graph = helper.make_graph(
            self.nodes, "g", [helper.make_tensor_value_info(n, F, s) for n, s in inputs],
            [helper.make_tensor_value_info(o, F, None) for o in outputs], self.inits)
        proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid(QONNX, 1)])
        model = ir.from_proto(proto)
        run_passes(model, "infer-shapes")
        return model


def check(model, mode, feeds=None, max_transposes=None, expect_modified=True):
    """Run to-channels-last, compare executor outputs bit for bit, then to-channels-first, compare again."""
    feeds = feeds or {v.name: RNG.standard_normal([int(d) for d in v.shape]).astype(np.float32)
                      for v in model.graph.inputs}
    before = Executor(model).run(feeds)
    names_before = {n.name for n in model.graph}
    p = ToChannelsLast(mode=mode)
    assert p(model).modified == expect_modified
    after = Executor(model).run(feeds)
    for key in before:
        np.testing.assert_array_equal(after[key], before[key])
    names = [n.name for n in model.graph]
    assert all(names) and len(set(names)) == len(names)
    ops = Counter((n.domain, n.op_type) for n in model.graph)
    if max_transposes is not None:
        assert ops[("", "Transpose")] <= max_transposes, ops
    if mode == "qonnx":
        assert not any(n.op_type in ("Conv", "MaxPool", "BatchNormalization") and n.domain == "" for n in model.graph)
    else:
        assert not any(n.domain == CHANNELS_LAST for n in model.graph)
    ToChannelsFirst()(model)
    back = Executor(model).run(feeds)
    for key in before:
        np.testing.assert_array_equal(back[key], before[key])
    assert not any(n.domain == CHANNELS_LAST for n in model.graph)
    assert sum(n.op_type == "Transpose" for n in model.graph) == 0
    assert {n.name for n in model.graph} >= {n for n in names_before if n}
    return ops


def test_registered():
    reg = registered_passes()
    assert reg["to-channels-last"] is ToChannelsLast and reg["to-channels-first"] is ToChannelsFirst
    assert make_pass("to-channels-last", {"mode": "transpose"}).mode == "transpose"
    with pytest.raises(BadInputError):
        ToChannelsLast(mode="nhwc")(ir.Model(ir.Graph([], [], nodes=[]), ir_version=8))


@pytest.mark.parametrize("mode", MODES)
def test_conv_bias_chain(mode):
    b = Builder()
    y = b.conv("x", 3, 4)
    y = b.node("Relu", [y])
    y = b.conv(y, 4, 5, bias=False)
    ops = check(b.model([("x", [1, 3, 6, 6])], [y]), mode, max_transposes=2 if mode == "qonnx" else 4)
    if mode == "qonnx":
        assert ops[(CHANNELS_LAST, "Conv")] == 2


@pytest.mark.parametrize("mode", MODES)
def test_per_channel_quant_leakyrelu_bn_maxpool(mode):
    b = Builder()
    y = b.conv("x", 2, 4)
    y = b.quant(y, RNG.uniform(0.05, 0.2, (4, 1, 1)))  # per-channel scale (C,1,1): must be permuted
    y = b.node("LeakyRelu", [y], alpha=0.1)
    bn = [b.const(RNG.uniform(0.5, 1.5, 4)) for _ in range(2)] + [b.const(RNG.standard_normal(4)), b.const(RNG.uniform(0.5, 1, 4))]
    y = b.node("BatchNormalization", [y, *bn])
    y = b.node("MaxPool", [y], kernel_shape=[2, 2], strides=[2, 2])
    y = b.node("Mul", [y, b.const(RNG.standard_normal((1, 4, 1, 1)))])
    y = b.conv(y, 4, 3)
    model = b.model([("x", [2, 2, 8, 8])], [y])
    ops = check(model, mode, max_transposes=2 if mode == "qonnx" else None)
    if mode == "qonnx":
        assert ops[(CHANNELS_LAST, "BatchNormalization")] == ops[(CHANNELS_LAST, "MaxPool")] == 1


def test_per_channel_scale_is_permuted():
    b = Builder()
    y = b.conv("x", 2, 4)
    y = b.quant(y, RNG.uniform(0.05, 0.2, (4, 1, 1)))
    y = b.conv(y, 4, 3)
    model = b.model([("x", [1, 2, 5, 5])], [y])
    ToChannelsLast()(model)
    quant = next(n for n in model.graph if n.op_type == "Quant" and n.inputs[0].producer() is not None
                 and n.inputs[0].producer().op_type == "Conv")
    assert list(quant.inputs[1].shape) == [1, 1, 1, 4]


@pytest.mark.parametrize("mode", MODES)
def test_unet_like_branches_concat_resize_add(mode):
    b = Builder()
    e1 = b.node("Relu", [b.conv("x", 2, 4)])
    d = b.node("MaxPool", [e1], kernel_shape=[2, 2], strides=[2, 2])
    e2 = b.node("Relu", [b.conv(d, 4, 4)])
    up = b.node("Resize", [e2, "", b.const([1.0, 1.0, 2.0, 2.0])], mode="nearest")
    cat = b.node("Concat", [e1, up], axis=1)  # skip connection: channel axis remapped to 3
    r = b.conv(cat, 8, 4)
    res = b.node("Add", [r, e1])  # residual Add: both inputs carry the Transpose
    out = b.conv(res, 4, 1, k=1)
    model = b.model([("x", [1, 2, 8, 8])], [out, e2])  # e2 is also a graph output
    ops = check(model, mode)
    if mode == "qonnx":
        # input, e2 output, final output: the only Transposes left
        assert ops[("", "Transpose")] == 3


def test_concat_axis_and_resize_scales_remapped():
    b = Builder()
    e1 = b.conv("x", 2, 4)
    up = b.node("Resize", [b.conv(e1, 4, 4), "", b.const([1.0, 1.0, 1.0, 1.0])], mode="nearest")
    cat = b.node("Concat", [e1, up], axis=1)
    out = b.conv(cat, 8, 2)
    model = b.model([("x", [1, 2, 4, 6])], [out])
    ToChannelsLast()(model)
    concat = next(n for n in model.graph if n.op_type == "Concat")
    assert concat.attributes["axis"].value == 3
    assert all(v.producer() is None or v.producer().op_type != "Transpose" for v in concat.inputs)


@pytest.mark.parametrize("mode", MODES)
def test_conv1d(mode):
    b = Builder()
    y = b.conv("x", 3, 5, dims=1)
    y = b.quant(y, RNG.uniform(0.05, 0.2, (5, 1)))
    y = b.node("Sigmoid", [y])
    y = b.conv(y, 5, 2, dims=1)
    model = b.model([("x", [2, 3, 16])], [y])
    check(model, mode, max_transposes=2 if mode == "qonnx" else 4)


def test_conv1d_perms():
    b = Builder()
    y = b.conv("x", 3, 5, dims=1)
    model = b.model([("x", [1, 3, 7])], [y])
    ToChannelsLast()(model)
    perms = sorted(tuple(n.attributes["perm"].value) for n in model.graph if n.op_type == "Transpose")
    assert perms == [(0, 2, 1), (0, 2, 1)]
    assert next(n for n in model.graph if n.op_type == "Conv").domain == CHANNELS_LAST


@pytest.mark.parametrize("mode", MODES)
def test_avgpool_and_global_pool_stay_nchw(mode):
    b = Builder()
    y = b.conv("x", 2, 4)
    y = b.node("AveragePool", [y], kernel_shape=[2, 2], strides=[2, 2])
    y = b.conv(y, 4, 4)
    y = b.node("GlobalAveragePool", [y])
    y = b.node("Flatten", [y])
    model = b.model([("x", [1, 2, 6, 6])], [y])
    # transpose mode: no element-wise op between the layout ops, every inserted pair cancels (honest "unchanged")
    check(model, mode, expect_modified=mode == "qonnx")
    p = ToChannelsLast(mode=mode)
    p(model)
    assert {n.op_type for n in model.graph if n.domain == ""} >= {"AveragePool", "GlobalAveragePool"}


def test_unknown_rank_declined_and_not_modified():
    b = Builder()
    y = b.conv("x", 2, 4)
    model = b.model([("x", [1, 2, 5, 5])], [y])
    for v in model.graph.inputs:
        v.shape = None
    for n in model.graph:
        n.inputs[1].shape = None
    p = ToChannelsLast()
    assert not p(model).modified
    assert p.declined and "rank unknown" in p.declined[0]
    assert not ToChannelsFirst()(model).modified


BREVITAS_CONV = [
    "bnn_cnv_2w2a", "depthwise_grouped_conv2d", "residual_shared_quant", "maxpool_quanttensor", "batchnorm_between",
    "decoder_convtranspose2d_upsample", "trunc_avgpool_floor", "qop_cnn_s8", "seed_qop_conv", "imagenet_mobilenet_v1_4b",
]
CORPUS = {d.name: d for d in brevitas_models()}


@pytest.mark.shared
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", BREVITAS_CONV)
def test_corpus_outputs_unchanged(name, mode):
    if name not in CORPUS:
        pytest.skip(f"{name} not in the corpus")
    model = load(CORPUS[name] / "qonnx.onnx")
    run_passes(model, "remove-static-inputs,infer-shapes")
    n_transposes = sum(n.op_type == "Transpose" for n in model.graph)
    inp = model.graph.inputs[0]
    x = np.random.default_rng(1).standard_normal([int(d) for d in inp.shape]).astype(np.float32)
    before = Executor(model).run({inp.name: x})
    assert ToChannelsLast(mode=mode)(model).modified
    names = [n.name for n in model.graph]
    assert all(names) and len(set(names)) == len(names)
    if mode == "qonnx":
        assert not any(n.domain == "" and n.op_type in ("Conv", "MaxPool") for n in model.graph)
    after = Executor(model).run({inp.name: x})
    for key in before:
        np.testing.assert_array_equal(after[key], before[key])
    ToChannelsFirst()(model)
    back = Executor(model).run({inp.name: x})
    for key in before:
        np.testing.assert_array_equal(back[key], before[key])
    assert sum(n.op_type == "Transpose" for n in model.graph) == n_transposes


@pytest.mark.parametrize("mode", MODES)
def test_second_run_changes_nothing(mode):
    b = Builder()
    y = b.node("Relu", [b.conv("x", 3, 4)])
    y = b.conv(y, 4, 2)
    model = b.model([("x", [1, 3, 6, 6])], [y])
    assert ToChannelsLast(mode=mode)(model).modified
    assert not ToChannelsLast(mode=mode)(model).modified


def test_transpose_mode_runs_in_onnxruntime():
    from qonnx_tools.runtime import run_onnxruntime

    b = Builder()
    y = b.node("Relu", [b.conv("x", 3, 4)])
    y = b.node("Add", [y, b.const(RNG.standard_normal((4, 1, 1)))])
    y = b.conv(y, 4, 2)
    model = b.model([("x", [1, 3, 6, 6])], [y])
    feeds = {"x": RNG.standard_normal((1, 3, 6, 6)).astype(np.float32)}
    ref = run_onnxruntime(model, feeds)
    assert ToChannelsLast(mode="transpose")(model).modified
    got = run_onnxruntime(model, feeds)
    for key in ref:
        np.testing.assert_allclose(got[key], ref[key], rtol=1e-6, atol=1e-6)
    # Relu and Add run on NHWC tensors: Transpose(to NCHW) sits right before the second Conv
    second = [n for n in model.graph if n.op_type == "Conv"][1]
    assert second.inputs[0].producer().op_type == "Transpose"
    add = next(n for n in model.graph if n.op_type == "Add")
    assert list(add.outputs[0].shape) == [1, 6, 6, 4]


@pytest.mark.parametrize("mode", ["qonnx", "transpose"])
def test_conv_output_that_is_a_graph_output_keeps_its_name(mode):
    from qonnx_tools.runtime import run_onnxruntime
    from qonnx_tools.testing import make_proto

    w = np.random.default_rng(3).standard_normal((2, 3, 3, 3)).astype(np.float32)
    proto = make_proto([helper.make_node("Conv", ["x", "W"], ["y"], name="c", kernel_shape=[3, 3])],
                       [("x", TensorProto.FLOAT, (1, 3, 5, 5))], [("y", TensorProto.FLOAT, (1, 2, 3, 3))], [("W", w)])
    feeds = {"x": np.random.default_rng(4).standard_normal((1, 3, 5, 5)).astype(np.float32)}
    expected = run_onnxruntime(ir.from_proto(proto), feeds)["y"]
    model = ir.from_proto(proto)
    run_passes(model, f"infer-shapes,to-channels-last{{mode={mode}}}")
    assert [v.name for v in model.graph.outputs] == ["y"]
    np.testing.assert_allclose(Executor(model).run(feeds)["y"], expected, rtol=1e-5, atol=1e-5)
