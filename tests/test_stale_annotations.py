"""Exporters' stale shape annotations (symbolic ``value_info`` downstream of a static input).

QKeras->QONNX, qonnx's test data and Brevitas with dynamic axes leave ``value_info``
entries such as ``unk__12`` or ``Quant7_dim_1`` although the graph input is static.
Every command must read such a file exactly as it reads the same file with those
annotations removed. The stale files are made here from models with a static input
(``with_stale_value_info``: right ranks and types, only symbolic dimensions); the
expected shapes are those of the tensors the executor computes, the expected MACs
are counted by hand.
"""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from qonnx_tools._ir import ir
from qonnx_tools.cost import inference_cost
from qonnx_tools.model_io import normalise_domains
from qonnx_tools.passes import run_passes
from qonnx_tools.prepare import prepare
from qonnx_tools.streamline import streamline
from qonnx_tools.testing import (
    brevitas_models,
    executed_values,
    quant_node,
    with_stale_value_info,
    without_value_info,
)

ROOT = Path(__file__).resolve().parents[1]
QONNX = "qonnx.custom_op.general"


def espcn_proto() -> onnx.ModelProto:
    """An ESPCN-style super-resolution network: three quantized Convs, DepthToSpace, Resize,
    a quantized ConvTranspose; static input (1, 1, 16, 16)."""
    rng = np.random.default_rng(7)

    def init(name, array):
        return numpy_helper.from_array(np.asarray(array, np.float32), name)

    def quant(x, scale, bits, out, signed=1):
        return quant_node(x, scale, "zero", bits, out, signed=signed)

    nodes = [
        quant("x", "s_in", "b8", "xq", signed=0),
        quant("w1", "s_w", "b4", "w1q"),
        helper.make_node("Conv", ["xq", "w1q", "bias1"], ["c1"], pads=[2, 2, 2, 2]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        quant("r1", "s_a", "b4", "a1", signed=0),
        quant("w2", "s_w", "b4", "w2q"),
        helper.make_node("Conv", ["a1", "w2q"], ["c2"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c2"], ["r2"]),
        quant("r2", "s_a", "b4", "a2", signed=0),
        quant("w3", "s_w", "b4", "w3q"),
        helper.make_node("Conv", ["a2", "w3q"], ["c3"], pads=[1, 1, 1, 1]),
        quant("c3", "s_a", "b8", "a3"),
        helper.make_node("DepthToSpace", ["a3"], ["d"], blocksize=2),
        helper.make_node("Resize", ["d", "", "scales"], ["u"], mode="nearest"),
        quant("wt", "s_w", "b4", "wtq"),
        helper.make_node("ConvTranspose", ["u", "wtq"], ["y"], strides=[2, 2]),
    ]
    inits = [
        init("s_in", 1 / 255), init("s_w", 0.05), init("s_a", 0.25), init("zero", 0), init("b8", 8), init("b4", 4),
        init("w1", rng.normal(size=(16, 1, 5, 5))), init("bias1", rng.normal(size=16)),
        init("w2", rng.normal(size=(8, 16, 3, 3))), init("w3", rng.normal(size=(4, 8, 3, 3))),
        init("scales", [1, 1, 2, 2]), init("wt", rng.normal(size=(1, 2, 2, 2))),
    ]
    graph = helper.make_graph(
        nodes, "espcn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 16, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits,
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid(QONNX, 1)])
    proto.ir_version = 8
    return proto


#: MACs of espcn_proto counted by hand: N*M*H*W*(C*kh*kw) per Conv, N*C*H*W*(M*kh*kw) for ConvTranspose.
ESPCN_MACS = (
    16 * 16 * 16 * (1 * 5 * 5)  # conv 1: 16 channels on 16x16 (pads keep the size), 5x5 over 1 channel
    + 8 * 16 * 16 * (16 * 3 * 3)  # conv 2
    + 4 * 16 * 16 * (8 * 3 * 3)  # conv 3
    + 1 * 64 * 64 * (2 * 2 * 2)  # conv-transpose on the 64x64 upsampled map, 2 outputs, 2x2 kernel
)


def espcn_feeds() -> dict[str, np.ndarray]:
    return {"x": np.random.default_rng(0).random((1, 1, 16, 16), dtype=np.float32)}


def tfc_proto() -> onnx.ModelProto:
    return onnx.load(ROOT / "models" / "tfc" / "TFC_2W2A.onnx")


def tfc_feeds() -> dict[str, np.ndarray]:
    proto = tfc_proto()
    inits = {i.name for i in proto.graph.initializer}
    (name,) = [i.name for i in proto.graph.input if i.name not in inits]
    return {name: np.random.default_rng(0).random((1, 1, 28, 28), dtype=np.float32)}


CASES = {"espcn": (espcn_proto, espcn_feeds), "tfc_2w2a": (tfc_proto, tfc_feeds)}


def to_ir(proto: onnx.ModelProto) -> ir.Model:
    model = ir.serde.deserialize_model(proto)
    normalise_domains(model)
    return model


def symbolic_values(model: ir.Model) -> list[str]:
    """Values (inputs, node outputs, outputs) with any symbolic or unknown dimension."""
    found = []
    for value in [*model.graph.inputs, *(v for n in model.graph for v in n.outputs), *model.graph.outputs]:
        if value.shape is None or any(not isinstance(d, int) for d in value.shape):
            found.append(f"{value.name}: {value.shape}")
    return found


def assert_shapes_are_executed_ones(model: ir.Model, feeds) -> None:
    """Every node output of ``model`` is declared static, with the shape of the tensor the
    executor computes for it (cleanup may rewrite nodes: the cleaned model itself is run)."""
    assert symbolic_values(model) == []
    executed = executed_values(ir.serde.serialize_model(model), feeds)
    outputs = [v for node in model.graph for v in node.outputs if v.name in executed]
    assert outputs
    for value in outputs:
        assert tuple(value.shape) == executed[value.name].shape, value.name


def op_counts(model: ir.Model) -> Counter:
    return Counter(node.op_type for node in model.graph)


def run_model(model: ir.Model, feeds):
    from qonnx_tools.executor import Executor

    return Executor(model).run(feeds)


@pytest.mark.parametrize("case", sorted(CASES))
def test_stale_file_really_has_symbolic_annotations(case):
    build, feeds = CASES[case]
    stale = with_stale_value_info(build(), feeds())
    dims = [d.dim_param for v in stale.graph.value_info for d in v.type.tensor_type.shape.dim]
    assert dims and all(dims), "every annotated dimension must be symbolic"


@pytest.mark.parametrize("case", sorted(CASES))
def test_cleanup_makes_every_shape_the_executed_one(case):
    build, feeds = CASES[case]
    model = to_ir(with_stale_value_info(build(), feeds()))
    run_passes(model, "cleanup")
    assert_shapes_are_executed_ones(model, feeds())


def test_cost_counts_the_hand_computed_macs_on_the_stale_file():
    stale = to_ir(with_stale_value_info(espcn_proto(), espcn_feeds()))
    report = inference_cost(stale)
    assert [line for line in report.unsupported if "shapes unknown" in line] == []
    assert report.total_macs == ESPCN_MACS


def test_cost_cli_on_the_stale_file(tmp_path):
    path = tmp_path / "stale.onnx"
    onnx.save(with_stale_value_info(espcn_proto(), espcn_feeds()), path)
    run = subprocess.run([sys.executable, "-m", "qonnx_tools.cli.main", "cost", str(path)], capture_output=True,
                         text=True)
    assert run.returncode == 0, run.stderr
    assert f"{ESPCN_MACS:,}" in run.stdout
    assert "shapes unknown" not in run.stdout


@pytest.mark.parametrize("case", sorted(CASES))
def test_streamline_is_the_same_as_without_value_info(case):
    build, feeds = CASES[case]
    stale, bare = to_ir(with_stale_value_info(build(), feeds())), to_ir(without_value_info(build()))
    streamline(stale)
    streamline(bare)
    assert op_counts(stale) == op_counts(bare)
    got, want = run_model(stale, feeds()), run_model(bare, feeds())
    assert got.keys() == want.keys()
    for name in want:
        np.testing.assert_array_equal(got[name], want[name])


@pytest.mark.parametrize("case", sorted(CASES))
def test_prepare_hls4ml_is_the_same_as_without_value_info(case):
    build, feeds = CASES[case]
    stale, bare = to_ir(with_stale_value_info(build(), feeds())), to_ir(without_value_info(build()))
    got, want = prepare(stale, "hls4ml"), prepare(bare, "hls4ml")
    assert [str(v) for v in got.violations] == [str(v) for v in want.violations]
    assert op_counts(stale) == op_counts(bare)
    assert symbolic_values(stale) == []


@pytest.mark.shared
@pytest.mark.parametrize("folder", brevitas_models(), ids=lambda p: p.name)
def test_shared_models_cleanup_gives_executed_shapes_through_stale_annotations(folder):
    path = folder / "qonnx.onnx"
    if not path.exists():
        pytest.skip("no QONNX export for this model")
    proto = onnx.load(path)
    inits = {i.name for i in proto.graph.initializer}
    (name,) = [i.name for i in proto.graph.input if i.name not in inits]
    feeds = {name: np.load(folder / "io.npz")["input"]}
    model = to_ir(with_stale_value_info(proto, feeds))
    run_passes(model, "cleanup")
    assert_shapes_are_executed_ones(model, feeds)
