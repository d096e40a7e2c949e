"""to-channels-first, the inverse of to-channels-last: handmade graphs and the corpus conv models are
taken to channels-last (checked) and back, executor bit-exact both ways, every Transpose cancelled."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from qonnx_tools.domains import CHANNELS_LAST
from qonnx_tools.executor import Executor
from qonnx_tools.model_io import load
from qonnx_tools.passes import registered_passes, run_passes
from qonnx_tools.passes.to_channels_first import ToChannelsFirst
from qonnx_tools.passes.to_channels_last import ToChannelsLast
from qonnx_tools.testing import GraphBuilder, brevitas_models

MODES = ["qonnx", "transpose"]
RNG = np.random.default_rng(0)


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
    assert registered_passes()["to-channels-first"] is ToChannelsFirst


@pytest.mark.parametrize("mode", MODES)
def test_conv_bias_chain(mode):
    b = GraphBuilder(RNG)
    y = b.conv("x", 3, 4)
    y = b.node("Relu", [y])
    y = b.conv(y, 4, 5, bias=False)
    ops = check(b.model([("x", [1, 3, 6, 6])], [y]), mode, max_transposes=2 if mode == "qonnx" else 4)
    if mode == "qonnx":
        assert ops[(CHANNELS_LAST, "Conv")] == 2


@pytest.mark.parametrize("mode", MODES)
def test_per_channel_quant_leakyrelu_bn_maxpool(mode):
    b = GraphBuilder(RNG)
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


@pytest.mark.parametrize("mode", MODES)
def test_unet_like_branches_concat_resize_add(mode):
    b = GraphBuilder(RNG)
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


@pytest.mark.parametrize("mode", MODES)
def test_conv1d(mode):
    b = GraphBuilder(RNG)
    y = b.conv("x", 3, 5, dims=1)
    y = b.quant(y, RNG.uniform(0.05, 0.2, (5, 1)))
    y = b.node("Sigmoid", [y])
    y = b.conv(y, 5, 2, dims=1)
    model = b.model([("x", [2, 3, 16])], [y])
    check(model, mode, max_transposes=2 if mode == "qonnx" else 4)


@pytest.mark.parametrize("mode", MODES)
def test_avgpool_and_global_pool_stay_nchw(mode):
    b = GraphBuilder(RNG)
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
