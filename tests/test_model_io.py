"""Loading, saving, domain normalisation, external data and atomic writes (validation: test_validate.py)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from qonnx_tools import model_io
from qonnx_tools._ir import ir
from qonnx_tools.domains import QONNX
from qonnx_tools.errors import ModelSaveError
from qonnx_tools.testing import shared_models

SHARED_MODELS = shared_models()


def _small_qonnx_model(domain: str = "finn.custom_op.general", weight_size: int = 64) -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    weight = rng.standard_normal((weight_size, 4)).astype(np.float32)
    nodes = [
        helper.make_node("Quant", ["W", "s", "z", "b"], ["Wq"], domain=domain, signed=1, narrow=1, rounding_mode="ROUND"),
        helper.make_node("MatMul", ["x", "Wq"], ["y"]),
    ]
    inits = [
        numpy_helper.from_array(weight, "W"),
        numpy_helper.from_array(np.array(0.1, np.float32), "s"),
        numpy_helper.from_array(np.array(0.0, np.float32), "z"),
        numpy_helper.from_array(np.array(4.0, np.float32), "b"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", weight_size])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])],
        inits,
    )
    graph.quantization_annotation.add(tensor_name="Wq").quant_parameter_tensor_names.add(key="finn_datatype", value="INT4")
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def _write(proto: onnx.ModelProto, path: Path) -> Path:
    onnx.save(proto, str(path))
    return path


def _graph_signature(model: ir.Model) -> tuple:
    nodes = tuple(
        (n.domain, n.op_type, n.name, tuple(v.name if v is not None else "" for v in n.inputs),
         tuple(v.name for v in n.outputs), tuple(sorted((k, repr(a.value)) for k, a in n.attributes.items())))
        for n in model.graph
    )
    inits = tuple(sorted((k, v.const_value.numpy().tobytes()) for k, v in model.graph.initializers.items()))
    annotations = tuple(sorted(
        (v.name, tuple(sorted(v.meta.get("quant_parameter_tensor_names", {}).items())))
        for n in model.graph for v in n.outputs if v.meta.get("quant_parameter_tensor_names")
    ))
    return nodes, inits, annotations, tuple(sorted(model.opset_imports.items()))


def test_domain_aliases_are_normalised(tmp_path):
    model = model_io.load(_write(_small_qonnx_model("finn.custom_op.general"), tmp_path / "m.onnx"))
    assert {n.domain for n in model.graph} == {"", QONNX}
    assert model.opset_imports[QONNX] == model_io.DEFAULT_QONNX_OPSET
    assert "finn.custom_op.general" not in model.opset_imports


def test_brevitas_domain_keeps_imported_version(tmp_path):
    proto = _small_qonnx_model("onnx.brevitas")
    proto.opset_import.append(helper.make_opsetid("onnx.brevitas", 2))
    model = model_io.load(_write(proto, tmp_path / "m.onnx"))
    assert model.opset_imports[QONNX] == 2


def test_save_load_round_trip_keeps_annotation(tmp_path):
    model = model_io.load(_write(_small_qonnx_model(), tmp_path / "m.onnx"))
    model_io.save(model, tmp_path / "out.onnx")
    proto = onnx.load(str(tmp_path / "out.onnx"))
    onnx.checker.check_model(proto)
    annotations = {(a.tensor_name, e.key, e.value) for a in proto.graph.quantization_annotation for e in a.quant_parameter_tensor_names}
    assert annotations == {("Wq", "finn_datatype", "INT4")}
    assert _graph_signature(model_io.load(tmp_path / "out.onnx")) == _graph_signature(model)


def test_external_data_on_request(tmp_path):
    proto = _small_qonnx_model(weight_size=4096)
    model = model_io.load(_write(proto, tmp_path / "m.onnx"))
    model_io.save(model, tmp_path / "ext.onnx", external_data=True)
    data = tmp_path / "ext.onnx.data"
    assert data.is_file() and data.stat().st_size >= 4096 * 4 * 4
    assert (tmp_path / "ext.onnx").stat().st_size < 4096 * 4  # weights are not inline
    # an independent reader (onnx) finds the same weights through the data file
    reread = onnx.load(str(tmp_path / "ext.onnx"))
    expected = numpy_helper.to_array(next(t for t in proto.graph.initializer if t.name == "W"))
    got = numpy_helper.to_array(next(t for t in reread.graph.initializer if t.name == "W"))
    np.testing.assert_array_equal(got, expected)
    # and saving the loaded external model again (in place) keeps the data intact
    again = model_io.load(tmp_path / "ext.onnx")
    model_io.save(again, tmp_path / "ext.onnx", external_data=True)
    np.testing.assert_array_equal(model_io.load(tmp_path / "ext.onnx").graph.initializers["W"].const_value.numpy(), expected)
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def _external_model(tmp_path: Path, weight: np.ndarray | None = None) -> tuple[Path, np.ndarray]:
    proto = _small_qonnx_model(weight_size=4096)
    if weight is not None:
        proto.graph.initializer[0].CopyFrom(numpy_helper.from_array(weight, "W"))
    model = model_io.load(_write(proto, tmp_path / "src.onnx"))
    target = tmp_path / "ext.onnx"
    model_io.save(model, target, external_data=True)
    (tmp_path / "src.onnx").unlink()
    return target, numpy_helper.to_array(proto.graph.initializer[0])


def test_in_place_external_save_alternates_data_files(tmp_path):
    target, expected = _external_model(tmp_path)
    for round_ in range(3):
        model = model_io.load(target)
        model.graph.initializers["W"].const_value = ir.Tensor(expected + round_, name="W")
        model_io.save(model, target, external_data=True)
        # exactly one data file, the one the model names, holding the new values
        assert sorted(os.listdir(tmp_path)) == sorted(["ext.onnx", *[p.name for p in model_io.external_data_files(target)]])
        assert len(model_io.external_data_files(target)) == 1
        reread = onnx.load(str(target))
        np.testing.assert_array_equal(numpy_helper.to_array(reread.graph.initializer[0]), expected + round_)


def test_in_place_external_save_keeps_in_memory_model_readable(tmp_path):
    target, expected = _external_model(tmp_path)
    model = model_io.load(target)
    assert isinstance(model.graph.initializers["W"].const_value, ir.ExternalTensor)
    model_io.save(model, target, external_data=True)
    assert not (tmp_path / "ext.onnx.data").exists()  # the replaced data file is gone...
    np.testing.assert_array_equal(model.graph.initializers["W"].const_value.numpy(), expected)  # ...yet still readable


@pytest.mark.parametrize("interrupted_rename", [1, 2])
def test_interrupted_in_place_external_save_keeps_old_pair(tmp_path, monkeypatch, interrupted_rename):
    """An interrupt at either rename (data, then model) leaves the old model with its old data."""
    target, expected = _external_model(tmp_path)
    before = {p: (tmp_path / p).read_bytes() for p in os.listdir(tmp_path)}
    model = model_io.load(target)
    model.graph.initializers["W"].const_value = ir.Tensor(expected * 2, name="W")
    calls = []
    real_replace = os.replace

    def replace(src, dst):
        if Path(dst).name.startswith("."):  # temporary files (onnx_ir renames its own too)
            return real_replace(src, dst)
        calls.append(dst)
        if len(calls) == interrupted_rename:
            raise KeyboardInterrupt
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(KeyboardInterrupt):
        model_io.save(model, target, external_data=True)
    monkeypatch.setattr(os, "replace", real_replace)
    assert len(calls) == interrupted_rename
    assert {p: (tmp_path / p).read_bytes() for p in os.listdir(tmp_path)} == before
    np.testing.assert_array_equal(numpy_helper.to_array(onnx.load(str(target)).graph.initializer[0]), expected)


def test_failed_save_leaves_no_partial_file(tmp_path, monkeypatch):
    model = model_io.load(_write(_small_qonnx_model(), tmp_path / "m.onnx"))
    target = tmp_path / "out.onnx"

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(model_io.os, "fsync", boom)
    with pytest.raises(ModelSaveError, match="out.onnx"):
        model_io.save(model, target)
    assert sorted(os.listdir(tmp_path)) == ["m.onnx"]


def test_failed_save_keeps_existing_target(tmp_path, monkeypatch):
    model = model_io.load(_write(_small_qonnx_model(), tmp_path / "m.onnx"))
    target = tmp_path / "out.onnx"
    target.write_bytes(b"previous contents")
    monkeypatch.setattr(model_io.os, "fsync", lambda fd: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        model_io.save(model, target)
    assert target.read_bytes() == b"previous contents"
    assert sorted(os.listdir(tmp_path)) == ["m.onnx", "out.onnx"]


@pytest.mark.shared
@pytest.mark.parametrize("path", SHARED_MODELS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_shared_models_round_trip(path, tmp_path):
    model = model_io.load(path)
    original = onnx.load(str(path))
    # the IR sees exactly the file's nodes and initializers (independent reader: onnx)
    assert [n.op_type for n in model.graph] == [n.op_type for n in original.graph.node]
    assert set(model.graph.initializers) == {t.name for t in original.graph.initializer}
    for t in original.graph.initializer:
        np.testing.assert_array_equal(model.graph.initializers[t.name].const_value.numpy(), numpy_helper.to_array(t))
    file_annotations = {(a.tensor_name, e.key, e.value) for a in original.graph.quantization_annotation for e in a.quant_parameter_tensor_names}
    model_io.save(model, tmp_path / "copy.onnx")
    copy = onnx.load(str(tmp_path / "copy.onnx"))
    copy_annotations = {(a.tensor_name, e.key, e.value) for a in copy.graph.quantization_annotation for e in a.quant_parameter_tensor_names}
    assert copy_annotations == file_annotations
    assert _graph_signature(model_io.load(tmp_path / "copy.onnx")) == _graph_signature(model)
