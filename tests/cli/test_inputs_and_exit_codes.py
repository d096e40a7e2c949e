"""Strict inputs and exit codes through the CLI (subprocess): a user mistake is exit 2 with one
line naming it and no output file; random inputs only when asked, and announced."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

TFC = Path(__file__).resolve().parents[2] / "models" / "tfc" / "TFC_2W2A.onnx"  # input '0', batch fixed at 1


def qonnx(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "qonnx_tools.cli.main", *args], capture_output=True, text=True,
                          timeout=300)


def affine(path: Path) -> str:
    graph = helper.make_graph(
        [helper.make_node("Mul", ["x", "a"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])],
        [numpy_helper.from_array(np.full(4, 2.0, np.float32), "a")],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    return str(path)


def one_error_line(run: subprocess.CompletedProcess) -> str:
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert run.returncode == 2, run.stderr
    assert "Traceback" not in run.stderr
    errors = [line for line in lines if line.startswith("error: ") or ": error: " in line]
    assert len(errors) == 1, run.stderr
    return errors[0]


def test_npz_keys_must_match_the_model_inputs(tmp_path):
    model = affine(tmp_path / "m.onnx")
    np.savez(tmp_path / "in.npz", foo=np.ones((2, 4), np.float32))
    out = tmp_path / "out.npz"
    for args in (["exec", model, "--inputs", str(tmp_path / "in.npz"), "-o", str(out)],
                 ["verify", model, model, "--inputs", str(tmp_path / "in.npz")],
                 ["convert", "--to", "qcdq", model, "-o", str(tmp_path / "c.onnx"), "--verify",
                  "--inputs", str(tmp_path / "in.npz")]):
        line = one_error_line(qonnx(*args))
        assert "missing 'x'" in line and "unknown 'foo'" in line, line
    assert not out.exists() and not (tmp_path / "c.onnx").exists()
    np.savez(tmp_path / "extra.npz", x=np.ones((2, 4), np.float32), z=np.ones(3, np.float32))
    line = one_error_line(qonnx("exec", model, "--inputs", str(tmp_path / "extra.npz")))
    assert "unknown 'z'" in line and "missing" not in line


def test_exec_without_inputs_refuses_and_random_is_announced(tmp_path):
    model = affine(tmp_path / "m.onnx")
    assert "no inputs" in one_error_line(qonnx("exec", model))
    run = qonnx("exec", model, "--random", "--seed", "3", "--batch", "2")
    assert run.returncode == 0, run.stderr
    assert "inputs: random (seed 3): x float32 (2, 4) in [" in run.stderr
    assert "y: float32 (2, 4)" in run.stdout


def test_transform_verify_defaults_to_announced_random_inputs(tmp_path):
    run = qonnx("cleanup", affine(tmp_path / "m.onnx"), "-o", str(tmp_path / "c.onnx"), "--verify")
    assert run.returncode == 0, run.stderr
    assert "inputs: random (seed 0): x float32 (1, 4)" in run.stderr


def test_conflicting_or_misplaced_input_options_are_refused(tmp_path):
    model = affine(tmp_path / "m.onnx")
    np.save(tmp_path / "x.npy", np.ones((2, 4), np.float32))
    cases = {
        ("exec", model, "--random", "--input", f"x={tmp_path / 'x.npy'}"): "cannot be combined",
        ("exec", model, "--input", f"x={tmp_path / 'x.npy'}", "--seed", "1"): "apply to --random",
        ("verify", model, model, "--input", f"x={tmp_path / 'x.npy'}", "--runs", "3"): "--runs applies",
        ("verify", model, model, "--random", "--runs", "0"): "not a positive number",
        ("exec", model, "--random", "--batch", "-3"): "not a positive number",
    }
    for args, phrase in cases.items():
        assert phrase in one_error_line(qonnx(*args)), args


def test_batch_on_a_fixed_batch_model_says_how_to_rebind(tmp_path):
    line = one_error_line(qonnx("exec", str(TFC), "--random", "--batch", "2"))
    assert "fixed batch of 1" in line and "--fix-batch 2" in line


def test_broken_pipe_exits_quietly():
    process = subprocess.Popen([sys.executable, "-m", "qonnx_tools.cli.main", "passes"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    process.stdout.readline()
    process.stdout.close()  # the reader goes away, as `| head -1` does
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=120) == 0
    assert stderr == ""


def test_debug_is_accepted_after_the_command(tmp_path):
    garbage = tmp_path / "g.onnx"
    garbage.write_bytes(b"not a model")
    run = qonnx("info", str(garbage), "--debug")
    assert run.returncode == 2 and "Traceback" in run.stderr


def test_a_transform_script_that_raises_is_the_user_s_mistake(tmp_path):
    script = tmp_path / "bad.py"
    script.write_text("def transform(model):\n    raise ValueError('no such layer')\n")
    out = tmp_path / "out.onnx"
    line = one_error_line(qonnx("transform", str(script), affine(tmp_path / "m.onnx"), str(out)))
    assert "transform() raised ValueError: no such layer" in line
    assert not out.exists()
