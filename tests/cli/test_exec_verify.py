"""``qonnx exec``, ``qonnx verify`` and the commands' ``--verify`` end to end (subprocess), on generated and shared models."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from qonnx_tools.testing import brevitas_models

MODELS = Path(__file__).resolve().parents[2] / "models"


def qonnx(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "qonnx_tools.cli.main", *args], capture_output=True, text=True, timeout=300)


def _affine(path, offset: float, scale: float = 2.0) -> str:
    graph = helper.make_graph(
        [helper.make_node("Mul", ["x", "a"], ["m"]), helper.make_node("Add", ["m", "b"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])],
        [numpy_helper.from_array(np.full(4, scale, np.float32), "a"), numpy_helper.from_array(np.full(4, offset, np.float32), "b")],
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
    assert "MISMATCH" in bad.stdout


def test_verify_accepts_float32_noise_that_an_exact_rule_refuses(tmp_path):
    """2 * x + (1 + 2**-22) vs 2 * x + 1 at x = 0: every element 2.4e-7 apart (two float32 ulps of 1.0)."""
    a = _affine(tmp_path / "a.onnx", 1.0)
    b = _affine(tmp_path / "b.onnx", 1.0 + 2**-22)
    np.savez(tmp_path / "x.npz", x=np.zeros((1, 4), np.float32))
    ok = qonnx("verify", a, b, "--inputs", str(tmp_path / "x.npz"))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    (row,) = [line for line in ok.stdout.splitlines() if line.strip().startswith("y ")]
    assert row.split()[:3] == ["y", "executor", "onnxruntime"]
    assert "4 (100.00 %)" in row and row.rstrip().endswith("ok: atol/rtol")
    strict = qonnx("verify", a, b, "--inputs", str(tmp_path / "x.npz"), "--atol", "0", "--rtol", "0")
    assert strict.returncode == 1 and "MISMATCH" in strict.stdout


def test_verify_backend_per_side(tmp_path):
    a = _affine(tmp_path / "a.onnx", 1.0)
    result = qonnx("verify", a, a, "--random", "--backend-a", "onnxruntime", "--backend-b", "executor", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert (report["backend_a"], report["backend_b"]) == ("onnxruntime", "executor")
    assert report["outputs"][0]["verdict"] == "exact" and report["ok"] is True
    bad = qonnx("verify", a, a, "--random", "--backend-b", "tensorrt")
    assert bad.returncode == 2


def _qlinear_matmul_s8u8(path) -> str:
    """int8 x uint8 QLinearMatMul: standard ONNX that onnxruntime has no kernel for."""
    inits = [("a_s", np.float32(0.5)), ("a_z", np.int8(0)), ("b", np.arange(12, dtype=np.uint8).reshape(4, 3)),
             ("b_s", np.float32(0.25)), ("b_z", np.uint8(1)), ("y_s", np.float32(1.0)), ("y_z", np.int8(0))]
    graph = helper.make_graph(
        [helper.make_node("QLinearMatMul", ["a", "a_s", "a_z", "b", "b_s", "b_z", "y_s", "y_z"], ["y"])], "g",
        [helper.make_tensor_value_info("a", TensorProto.INT8, [2, 4])],
        [helper.make_tensor_value_info("y", TensorProto.INT8, [2, 3])],
        [numpy_helper.from_array(np.asarray(v), n) for n, v in inits],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    return str(path)


def test_verify_auto_falls_back_to_the_executor_without_an_onnxruntime_kernel(tmp_path):
    model = _qlinear_matmul_s8u8(tmp_path / "qlinear.onnx")
    result = qonnx("verify", model, model, "--random")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "note: B: auto fell back to the executor" in result.stdout and "QLinearMatMul" in result.stdout
    forced = qonnx("verify", model, model, "--random", "--backend-b", "onnxruntime")
    assert forced.returncode == 2 and "onnxruntime cannot load" in forced.stderr


def test_every_verify_uses_the_same_default_tolerance():
    from qonnx_tools.cli._common import tolerance_from_args
    from qonnx_tools.cli.main import build_parser
    from qonnx_tools.verify import Tolerance

    parser = build_parser()
    commands = [
        ["verify", "a.onnx", "b.onnx"],
        ["convert", "--to", "qcdq", "m.onnx", "-o", "o.onnx", "--verify"],
        ["cleanup", "m.onnx", "-o", "o.onnx", "--verify"],
        ["streamline", "m.onnx", "-o", "o.onnx", "--verify"],
    ]
    for argv in commands:
        assert tolerance_from_args(parser.parse_args(argv)) == Tolerance(1e-5, 1e-5, 0.0, 0.001), argv
    args = parser.parse_args(["convert", "--to", "qcdq", "m.onnx", "-o", "o.onnx", "--verify", "--max-steps", "1",
                              "--max-off-fraction", "0.01", "--atol", "0", "--rtol", "1e-3"])
    assert tolerance_from_args(args) == Tolerance(0.0, 1e-3, 1.0, 0.01)


def test_tolerance_flags_need_verify_and_legal_values(tmp_path):
    model = _affine(tmp_path / "m.onnx", 1.0)
    out = tmp_path / "out.onnx"
    result = qonnx("cleanup", model, "-o", str(out), "--max-steps", "1")
    assert result.returncode == 2 and "--max-steps: only meaningful with --verify" in result.stderr
    assert not out.exists()
    bad = qonnx("verify", model, model, "--random", "--atol", "-1")
    assert bad.returncode == 2 and "atol" in bad.stderr
    bad = qonnx("verify", model, model, "--random", "--max-off-fraction", "2")
    assert bad.returncode == 2 and "max-off-fraction" in bad.stderr


def test_convert_and_cleanup_verify_print_the_verify_table(tmp_path):
    out = tmp_path / "qcdq.onnx"
    result = qonnx("convert", "--to", "qcdq", str(MODELS / "generated" / "intquant_mlp.onnx"), "-o", str(out),
                   "--verify", "--random", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    verified = json.loads(result.stdout)["verify"]
    assert verified["ok"] is True and verified["optimized"]["backend_b"] == "onnxruntime-optimized"
    report = verified["exact"]  # the decisive check: onnxruntime with optimisations off
    assert (report["backend_a"], report["backend_b"]) == ("executor", "onnxruntime") and report["ok"] is True
    assert report["tolerance"] == {"atol": 1e-5, "rtol": 1e-5, "max_steps": 0.0, "max_off_fraction": 0.001}
    cleaned = tmp_path / "clean.onnx"
    result = qonnx("cleanup", str(out), "-o", str(cleaned), "--verify", "--random")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    k = next(i for i, line in enumerate(lines) if line.startswith("verify: A executor vs B executor"))
    assert lines[k + 1].split()[:3] == ["output", "backend", "A"] and lines[k + 1].rstrip().endswith("verdict")


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
