"""to-channels-last: per-channel constants permuted, axes remapped, 1-D convs, declines, honesty,
onnxruntime in transpose mode, graph output names.

The round trip (to-channels-last, then to-channels-first, executor bit-exact both ways) is in
test_to_channels_first.py."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper

from qonnx_tools._ir import ir
from qonnx_tools.domains import CHANNELS_LAST
from qonnx_tools.errors import BadInputError
from qonnx_tools.executor import Executor
from qonnx_tools.passes import make_pass, registered_passes, run_passes
from qonnx_tools.passes.to_channels_first import ToChannelsFirst
from qonnx_tools.passes.to_channels_last import ToChannelsLast
from qonnx_tools.testing import GraphBuilder

F = TensorProto.FLOAT
MODES = ["qonnx", "transpose"]
RNG = np.random.default_rng(0)


def test_registered():
    reg = registered_passes()
    assert reg["to-channels-last"] is ToChannelsLast
    assert make_pass("to-channels-last", {"mode": "transpose"}).mode == "transpose"
    with pytest.raises(BadInputError):
        ToChannelsLast(mode="nhwc")(ir.Model(ir.Graph([], [], nodes=[]), ir_version=8))


def test_per_channel_scale_is_permuted():
    b = GraphBuilder(RNG)
    y = b.conv("x", 2, 4)
    y = b.quant(y, RNG.uniform(0.05, 0.2, (4, 1, 1)))
    y = b.conv(y, 4, 3)
    model = b.model([("x", [1, 2, 5, 5])], [y])
    ToChannelsLast()(model)
    quant = next(n for n in model.graph if n.op_type == "Quant" and n.inputs[0].producer() is not None
                 and n.inputs[0].producer().op_type == "Conv")
    assert list(quant.inputs[1].shape) == [1, 1, 1, 4]


def test_concat_axis_and_resize_scales_remapped():
    b = GraphBuilder(RNG)
    e1 = b.conv("x", 2, 4)
    up = b.node("Resize", [b.conv(e1, 4, 4), "", b.const([1.0, 1.0, 1.0, 1.0])], mode="nearest")
    cat = b.node("Concat", [e1, up], axis=1)
    out = b.conv(cat, 8, 2)
    model = b.model([("x", [1, 2, 4, 6])], [out])
    ToChannelsLast()(model)
    concat = next(n for n in model.graph if n.op_type == "Concat")
    assert concat.attributes["axis"].value == 3
    assert all(v.producer() is None or v.producer().op_type != "Transpose" for v in concat.inputs)


def test_conv1d_perms():
    b = GraphBuilder(RNG)
    y = b.conv("x", 3, 5, dims=1)
    model = b.model([("x", [1, 3, 7])], [y])
    ToChannelsLast()(model)
    perms = sorted(tuple(n.attributes["perm"].value) for n in model.graph if n.op_type == "Transpose")
    assert perms == [(0, 2, 1), (0, 2, 1)]
    assert next(n for n in model.graph if n.op_type == "Conv").domain == CHANNELS_LAST


def test_unknown_rank_declined_and_not_modified():
    b = GraphBuilder(RNG)
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


@pytest.mark.parametrize("mode", MODES)
def test_second_run_changes_nothing(mode):
    b = GraphBuilder(RNG)
    y = b.node("Relu", [b.conv("x", 3, 4)])
    y = b.conv(y, 4, 2)
    model = b.model([("x", [1, 3, 6, 6])], [y])
    assert ToChannelsLast(mode=mode)(model).modified
    assert not ToChannelsLast(mode=mode)(model).modified


def test_transpose_mode_runs_in_onnxruntime():
    from qonnx_tools.runtime import run_onnxruntime

    b = GraphBuilder(RNG)
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
