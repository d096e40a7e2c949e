"""Every model-writing command: --in-place, --force and external data are handled alike.

The input is written only with --in-place; another existing file only with --force
(--in-place does not imply it); an input's external data file never, not even with
--force; an in-place save of an external-data model leaves one consistent pair.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from qonnx_tools import model_io
from qonnx_tools.cli.main import main
from qonnx_tools.domains import QONNX
from qonnx_tools.executor import execute

ROOT = Path(__file__).resolve().parents[2]

COMMANDS = {
    "cleanup": lambda src, *out: ["cleanup", src, "-o", *out],
    "convert": lambda src, *out: ["convert", src, "--to", "qcdq", "-o", *out],
    "streamline": lambda src, *out: ["streamline", src, "-o", *out],
    "prepare": lambda src, *out: ["prepare", "--target", "finn", src, "-o", *out],
    "transform": lambda src, *out: ["transform", str(ROOT / "transforms" / "fold_weights.py"), src, *out],
}


def _model(width: int = 64) -> onnx.ModelProto:
    """x -> Quant(4 bit) -> MatMul(W, 64x64 float: large enough to be stored externally) -> y."""
    rng = np.random.default_rng(0)
    nodes = [
        helper.make_node("Quant", ["x", "s", "z", "b"], ["xq"], name="quant", domain=QONNX,
                         signed=1, narrow=0, rounding_mode="ROUND"),
        helper.make_node("MatMul", ["xq", "W"], ["y"], name="matmul"),
    ]
    inits = [
        numpy_helper.from_array(np.array(0.25, np.float32), "s"),
        numpy_helper.from_array(np.array(0.0, np.float32), "z"),
        numpy_helper.from_array(np.array(4.0, np.float32), "b"),
        numpy_helper.from_array(rng.integers(-3, 4, (width, width)).astype(np.float32), "W"),
    ]
    graph = helper.make_graph(
        nodes, "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, width])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, width])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid(QONNX, 1)])


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_input_and_existing_outputs_are_protected(tmp_path, capsys, command):
    argv = COMMANDS[command]
    src = tmp_path / "model.onnx"
    src.write_bytes(_model().SerializeToString())
    other = tmp_path / "other.onnx"
    other.write_bytes(b"keep me")
    before = _files(tmp_path)

    for flags in ([], ["--force"]):  # --force never allows writing the input
        assert main(argv(str(src), str(src), *flags)) == 2
        assert "refusing to overwrite the input file (use --in-place to allow)" in capsys.readouterr().err
    for flags in ([], ["--in-place"]):  # --in-place does not allow overwriting another file
        assert main(argv(str(src), str(other), *flags)) == 2
        assert "already exists (use --force to overwrite)" in capsys.readouterr().err
    assert _files(tmp_path) == before

    assert main(argv(str(src), str(other), "--force")) == 0, capsys.readouterr().err
    assert other.read_bytes() != b"keep me" and src.read_bytes() == before["model.onnx"]
    assert main(argv(str(src), str(src), "--in-place")) == 0, capsys.readouterr().err
    assert src.read_bytes() != before["model.onnx"]
    onnx.checker.check_model(onnx.load(str(src)))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx", "other.onnx"]  # no temporaries


def _external_model(folder: Path) -> tuple[Path, dict[str, np.ndarray]]:
    model = model_io.load(_write(_model(), folder / "plain.onnx"))
    src = folder / "model.onnx"
    model_io.save(model, src, external_data=True)
    (folder / "plain.onnx").unlink()
    feeds = {"x": np.random.default_rng(1).uniform(-2, 2, (1, 64)).astype(np.float32)}
    return src, {"feeds": feeds, "y": execute(model_io.load(src), feeds)["y"]}


def _write(proto: onnx.ModelProto, path: Path) -> Path:
    path.write_bytes(proto.SerializeToString())
    return path


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_input_external_data_is_never_an_output(tmp_path, capsys, command):
    src, _ = _external_model(tmp_path)
    data = tmp_path / "model.onnx.data"
    assert data.is_file()
    before = _files(tmp_path)
    assert main(COMMANDS[command](str(src), str(data), "--force")) == 2
    err = capsys.readouterr().err
    assert f"{data}: is the external data file of the input {src}" in err
    assert _files(tmp_path) == before


def test_in_place_on_external_data_model_keeps_one_consistent_pair(tmp_path, capsys):
    src, reference = _external_model(tmp_path)
    for _ in range(2):  # twice: the data file name alternates, the old one is removed
        assert main(["cleanup", str(src), "-o", str(src), "--in-place"]) == 0, capsys.readouterr().err
        data_files = model_io.external_data_files(src)
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["model.onnx", *(p.name for p in data_files)])
        np.testing.assert_array_equal(execute(model_io.load(src), reference["feeds"])["y"], reference["y"])


def test_exec_has_no_in_place(tmp_path, capsys):
    src = _write(_model(), tmp_path / "model.onnx")
    assert main(["exec", str(src), "-o", str(src), "--force"]) == 2
    err = capsys.readouterr().err
    assert "refusing to overwrite the input file" in err and "--in-place" not in err
