"""opset-upgrade: attribute->input conversions keep numerics, custom nodes survive, size limit, errors."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from qonnx_tools import model_io
from qonnx_tools._ir import ir
from qonnx_tools.domains import QONNX
from qonnx_tools.errors import BadInputError
from qonnx_tools.executor import execute
from qonnx_tools.passes import make_pass, registered_passes
from qonnx_tools.passes import opset_upgrade as opset_upgrade_module
from qonnx_tools.passes.opset_upgrade import OpsetUpgrade, tensor_bytes
from qonnx_tools.runtime import run_onnxruntime
from qonnx_tools.testing import brevitas_corpus, corpus_input, run_executor

F = TensorProto.FLOAT
rng = np.random.default_rng(6)


def ops(model):
    return [n.op_type for n in model.graph]


def attribute_ops_proto(opset=10):
    """Pad, Clip, Split, Squeeze, Unsqueeze, ReduceSum and Resize with their pre-opset-13 attribute forms."""
    nodes = [
        helper.make_node("Pad", ["x"], ["p"], mode="constant", pads=[0, 0, 1, 1, 0, 0, 1, 1], value=0.5),
        helper.make_node("Clip", ["p"], ["c"], min=-0.7, max=0.9),
        helper.make_node("Split", ["c"], ["s1", "s2"], axis=1, split=[1, 2]),
        helper.make_node("ReduceSum", ["s2"], ["r"], axes=[1], keepdims=1),
        helper.make_node("Add", ["s1", "r"], ["a"]),
        helper.make_node("Resize", ["a", "scales"], ["up"], mode="nearest"),
        helper.make_node("Squeeze", ["up"], ["sq"], axes=[1]),
        helper.make_node("Unsqueeze", ["sq"], ["y"], axes=[0]),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", F, (2, 3, 4, 4))],
        [helper.make_tensor_value_info("y", F, (1, 2, 12, 12))],
        [numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales")],
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    proto.ir_version = 6
    return proto


def qonnx_proto(opset=11):
    """IntQuant weights + MultiThreshold activation around a Squeeze/Unsqueeze whose axes move to inputs at 13."""
    w = rng.standard_normal((4, 3)).astype(np.float32)
    thresholds = np.sort(rng.standard_normal((1, 3)).astype(np.float32), axis=1)
    nodes = [
        helper.make_node(
            "Quant", ["W", "s", "z", "bw"], ["Wq"], name="wq", domain=QONNX, signed=1, narrow=0, rounding_mode="ROUND"
        ),
        helper.make_node("MatMul", ["x", "Wq"], ["m"]),
        helper.make_node("Unsqueeze", ["m"], ["mu"], axes=[0]),
        helper.make_node("Squeeze", ["mu"], ["ms"], axes=[0]),
        helper.make_node(
            "MultiThreshold", ["ms", "T"], ["y"], name="act", domain=QONNX, out_dtype="UINT2", out_scale=0.5
        ),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", F, (2, 4))],
        [helper.make_tensor_value_info("y", F, (2, 3))],
        [
            numpy_helper.from_array(w, "W"),
            numpy_helper.from_array(np.float32(0.1), "s"),
            numpy_helper.from_array(np.float32(0.0), "z"),
            numpy_helper.from_array(np.float32(4.0), "bw"),
            numpy_helper.from_array(thresholds, "T"),
        ],
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset), helper.make_opsetid(QONNX, 1)])
    proto.ir_version = 7
    return proto


def custom_nodes(model):
    return [
        (
            n.name,
            n.domain,
            n.op_type,
            [v.name for v in n.inputs],
            [v.name for v in n.outputs],
            {k: a.value for k, a in n.attributes.items()},
        )
        for n in model.graph
        if n.domain not in ("", "ai.onnx")
    ]


def test_registered_and_options():
    assert registered_passes()["opset-upgrade"] is OpsetUpgrade
    assert "1.8 GB" in OpsetUpgrade.summary and "1.8 GB" in opset_upgrade_module.__doc__
    assert make_pass("opset-upgrade", {"target": "18"}) == OpsetUpgrade(target=18)


@pytest.mark.parametrize("target", [13, 18, 21])
def test_attribute_to_input_conversions_keep_numerics(target):
    proto = attribute_ops_proto()
    model = ir.from_proto(proto)
    assert OpsetUpgrade(target=target)(model).modified
    assert model.opset_imports[""] == target
    assert model.ir_version >= onnx.helper.find_min_ir_version_for([helper.make_opsetid("", target)])
    by_type = {n.op_type: n for n in model.graph}
    assert len(by_type["Pad"].inputs) >= 2 and "pads" not in by_type["Pad"].attributes
    assert len(by_type["Clip"].inputs) == 3 and "min" not in by_type["Clip"].attributes
    assert len(by_type["Split"].inputs) == 2 and "split" not in by_type["Split"].attributes
    assert len(by_type["Squeeze"].inputs) == 2 and len(by_type["Unsqueeze"].inputs) == 2
    assert len(by_type["ReduceSum"].inputs) == 2
    onnx.checker.check_model(ir.to_proto(model), full_check=True)
    feeds = {"x": rng.standard_normal((2, 3, 4, 4)).astype(np.float32)}
    before = ir.from_proto(proto)
    want = execute(before, feeds)["y"]
    np.testing.assert_array_equal(execute(model, feeds)["y"], want)
    np.testing.assert_array_equal(run_onnxruntime(model, feeds)["y"], run_onnxruntime(before, feeds)["y"])
    np.testing.assert_allclose(run_onnxruntime(model, feeds)["y"], want, rtol=1e-6, atol=1e-6)
    assert not OpsetUpgrade(target=target)(model).modified


def test_custom_nodes_survive_with_identical_attributes():
    proto = qonnx_proto()
    model = ir.from_proto(proto)
    before_custom = custom_nodes(model)
    assert OpsetUpgrade(target=19)(model).modified
    assert model.opset_imports[""] == 19 and model.opset_imports[QONNX] == 1
    assert custom_nodes(model) == before_custom
    squeeze = next(n for n in model.graph if n.op_type == "Squeeze")
    assert len(squeeze.inputs) == 2
    feeds = {"x": rng.standard_normal((2, 4)).astype(np.float32)}
    np.testing.assert_array_equal(execute(model, feeds)["y"], execute(ir.from_proto(proto), feeds)["y"])


def test_same_opset_is_unmodified():
    model = ir.from_proto(attribute_ops_proto(13))
    assert not OpsetUpgrade(target=13)(model).modified


def test_downgrade_refused_unless_allowed():
    node = helper.make_node("Sin", ["x"], ["y"])  # unchanged since opset 7: no adapter needed
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("x", F, (3,))], [helper.make_tensor_value_info("y", F, (3,))]
    )
    model = ir.from_proto(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))
    with pytest.raises(BadInputError, match="allow_downgrade"):
        OpsetUpgrade(target=11)(model)
    assert model.opset_imports[""] == 17
    assert OpsetUpgrade(target=11, allow_downgrade=True)(model).modified
    assert model.opset_imports[""] == 11


def test_converter_failure_is_a_clear_error_and_model_unchanged():
    nodes = [helper.make_node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y"])]
    inits = [numpy_helper.from_array(np.ones(3, np.float32), n) for n in "sbmv"]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", F, (1, 3, 2))],
        [helper.make_tensor_value_info("y", F, (1, 3, 2))],
        inits,
    )
    model = ir.from_proto(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)]))
    with pytest.raises(BadInputError, match="version converter failed"):
        OpsetUpgrade(target=13, allow_downgrade=True)(model)
    assert model.opset_imports[""] == 15 and ops(model) == ["BatchNormalization"]


@pytest.mark.parametrize("target", [None, 0, 10_000])
def test_bad_target(target):
    model = ir.from_proto(attribute_ops_proto())
    with pytest.raises(BadInputError):
        OpsetUpgrade(target=target)(model)


def test_large_models_are_refused_before_serialising(monkeypatch):
    model = ir.from_proto(qonnx_proto())
    size = tensor_bytes(model)
    assert size == 4 * 3 * 4 + 3 * 4 + 3 * 4  # W, s/z/bw scalars, thresholds
    monkeypatch.setattr(opset_upgrade_module, "MAX_TENSOR_BYTES", size - 1)

    def no_serialising(*args, **kwargs):
        raise AssertionError("serialised a model above the limit")

    monkeypatch.setattr(opset_upgrade_module.ir, "to_proto", no_serialising)
    with pytest.raises(BadInputError, match="2 GiB"):
        OpsetUpgrade(target=18)(model)
    assert model.opset_imports[""] == 11


def test_weights_are_not_copied():
    model = ir.from_proto(qonnx_proto())
    tensors = {name: v.const_value for name, v in model.graph.initializers.items()}
    assert OpsetUpgrade(target=18)(model).modified
    assert all(model.graph.initializers[name].const_value is t for name, t in tensors.items())


def test_external_data_stays_external_and_runs(tmp_path):
    w = rng.standard_normal((64, 64)).astype(np.float32)
    nodes = [helper.make_node("MatMul", ["x", "W"], ["m"]), helper.make_node("Unsqueeze", ["m"], ["y"], axes=[0])]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", F, (2, 64))],
        [helper.make_tensor_value_info("y", F, (1, 2, 64))],
        [numpy_helper.from_array(w, "W")],
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)])
    proto.ir_version = 7
    feeds = {"x": rng.standard_normal((2, 64)).astype(np.float32)}
    want = execute(ir.from_proto(proto), feeds)["y"]
    path = model_io.save(ir.from_proto(proto), tmp_path / "m.onnx", external_data=True)
    model = model_io.load(path)
    assert any(isinstance(v.const_value, ir.ExternalTensor) for v in model.graph.initializers.values())
    assert OpsetUpgrade(target=18)(model).modified
    assert any(isinstance(v.const_value, ir.ExternalTensor) for v in model.graph.initializers.values())
    np.testing.assert_array_equal(execute(model, feeds)["y"], want)
    saved = model_io.load(model_io.save(model, tmp_path / "up.onnx"))
    assert saved.opset_imports[""] == 18
    np.testing.assert_array_equal(execute(saved, feeds)["y"], want)


# -- corpus -------------------------------------------------------------------------------
CORPUS = brevitas_corpus()


@pytest.mark.shared
@pytest.mark.parametrize("path", CORPUS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_corpus_upgrade_to_21_keeps_outputs_and_custom_nodes(path):
    x = corpus_input(path)
    model = model_io.load(path)
    expected = run_executor(model, x)
    custom = custom_nodes(model)
    assert OpsetUpgrade(target=21)(model).modified
    assert custom_nodes(model) == custom
    got = run_executor(model, x)
    assert set(got) == set(expected)
    for name, want in expected.items():
        np.testing.assert_array_equal(got[name], want)


def test_large_weights_reach_the_converter_as_placeholders_and_come_back(monkeypatch):
    """Above ELIDE_BYTES a weight goes to onnx's converter as never-read external data (its bytes would
    only be serialised twice); the converted model gets the very same tensor back and computes the same."""
    w = rng.standard_normal((160, 160)).astype(np.float32)  # 100 KiB
    nodes = [helper.make_node("MatMul", ["x", "W"], ["m"]), helper.make_node("Unsqueeze", ["m"], ["y"], axes=[0])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", F, (2, 160))],
                              [helper.make_tensor_value_info("y", F, (1, 2, 160))], [numpy_helper.from_array(w, "W")])
    model = ir.from_proto(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)]))
    original = model.graph.initializers["W"].const_value
    seen = []
    real = opset_upgrade_module.onnx.version_converter.convert_version

    def spy(proto, target):
        seen.append(proto.ByteSize())
        (weight,) = proto.graph.initializer
        assert weight.data_location == onnx.TensorProto.EXTERNAL and not weight.raw_data
        return real(proto, target)

    monkeypatch.setattr(opset_upgrade_module.onnx.version_converter, "convert_version", spy)
    x = rng.standard_normal((2, 160)).astype(np.float32)
    expected = run_onnxruntime(model, {"x": x})["y"]
    assert OpsetUpgrade(target=18)(model).modified
    assert seen and seen[0] < w.nbytes / 10
    assert model.graph.initializers["W"].const_value is original
    np.testing.assert_array_equal(run_onnxruntime(model, {"x": x})["y"], expected)


def test_the_size_limit_counts_only_what_the_converter_sees(monkeypatch):
    """A weight above ELIDE_BYTES goes in as a placeholder, so it does not count against the 2 GiB limit:
    a model whose tensors exceed the limit only through such weights converts."""
    w = rng.standard_normal((160, 160)).astype(np.float32)  # 100 KiB, elided
    nodes = [helper.make_node("MatMul", ["x", "W"], ["m"]), helper.make_node("Unsqueeze", ["m"], ["y"], axes=[0])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", F, (2, 160))],
                              [helper.make_tensor_value_info("y", F, (1, 2, 160))], [numpy_helper.from_array(w, "W")])
    model = ir.from_proto(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)]))
    monkeypatch.setattr(opset_upgrade_module, "MAX_TENSOR_BYTES", w.nbytes // 2)
    assert OpsetUpgrade(target=18)(model).modified
