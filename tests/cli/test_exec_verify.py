"""``qonnx exec`` and ``qonnx verify`` end to end (subprocess), on generated and shared models."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from qonnx_tools.testing import brevitas_models


def qonnx(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "qonnx_tools.cli.main", *args], capture_output=True, text=True, timeout=300)


def _affine(path, offset: float) -> str:
    graph = helper.make_graph(
        [helper.make_node("Mul", ["x", "a"], ["m"]), helper.make_node("Add", ["m", "b"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])],
        [numpy_helper.from_array(np.full(4, 2.0, np.float32), "a"), numpy_helper.from_array(np.full(4, offset, np.float32), "b")],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    return str(path)


def test_exec_writes_named_outputs_with_given_batch(tmp_path):
    model = _affine(tmp_path / "m.onnx", 1.0)
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    np.save(tmp_path / "x.npy", x)
    out = tmp_path / "out.npz"
    result = qonnx("exec", model, "--input", f"x={tmp_path / 'x.npy'}", "-o", str(out))
    assert result.returncode == 0, result.stderr
    np.testing.assert_array_equal(np.load(out)["y"], x * 2 + 1)
    again = qonnx("exec", model, "--input", f"x={tmp_path / 'x.npy'}", "-o", str(out))
    assert again.returncode == 2 and "already exists" in again.stderr


def test_exec_random_batch_and_intermediates(tmp_path):
    model = _affine(tmp_path / "m.onnx", 1.0)
    out = tmp_path / "o.npz"
    result = qonnx("exec", model, "--random", "--batch", "5", "--keep-intermediates", "-o", str(out))
    assert result.returncode == 0, result.stderr
    data = np.load(out)
    assert data["y"].shape == (5, 4) and "m" in data.files


def test_exec_wrong_shape_is_one_line_error(tmp_path):
    model = _affine(tmp_path / "m.onnx", 1.0)
    np.save(tmp_path / "x.npy", np.zeros((2, 5), np.float32))
    result = qonnx("exec", model, "--input", f"x={tmp_path / 'x.npy'}")
    assert result.returncode == 2 and "input 'x'" in result.stderr and "Traceback" not in result.stderr


def test_verify_equal_and_different(tmp_path):
    a = _affine(tmp_path / "a.onnx", 1.0)
    same = _affine(tmp_path / "same.onnx", 1.0)
    other = _affine(tmp_path / "other.onnx", 1.5)
    ok = qonnx("verify", a, same, "--random", "--runs", "3", "--json")
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["outputs"][0]["max_abs"] == 0.0
    bad = qonnx("verify", a, other, "--random")
    assert bad.returncode == 1 and "beyond tolerance" in bad.stderr
    assert "0.5" in bad.stdout  # the max abs difference, computed by hand: 1.5 - 1.0


FOLDERS = [d for d in brevitas_models() if (d / "qonnx.onnx").is_file() and (d / "qcdq.onnx").is_file()]


@pytest.mark.shared
@pytest.mark.parametrize("folder", FOLDERS[:6], ids=lambda p: p.name)
def test_verify_brevitas_qonnx_against_its_qcdq(folder):
    """Brevitas' own QCDQ export runs in onnxruntime; our executor on the QONNX file must agree."""
    if folder.name in ("trunc_avgpool_floor", "imagenet_mobilenet_v1_4b"):
        pytest.skip("Brevitas' QCDQ export of floor Trunc rounds instead (shared/models/README.md)")
    result = qonnx("verify", str(folder / "qonnx.onnx"), str(folder / "qcdq.onnx"), "--inputs", str(folder / "io.npz"),
                   "--max-steps", "1")
    assert result.returncode == 0, result.stdout + result.stderr
