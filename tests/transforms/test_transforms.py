"""Every transforms/ script runs on a model and keeps its numerics (executor / onnxruntime before vs after)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from qonnx_tools.cli.main import main as qonnx_main
from qonnx_tools.cli.transform_cmd import load_script
from qonnx_tools.executor import Executor
from qonnx_tools.model_io import load
from qonnx_tools.runtime import only_standard_ops, random_inputs, run_onnxruntime

ROOT = Path(__file__).resolve().parents[2]
TRANSFORMS = ROOT / "transforms"
GEN = ROOT / "models" / "generated"


def _inputs(path: Path) -> dict[str, np.ndarray]:
    npz = path.with_suffix(".npz")
    if npz.exists():
        with np.load(npz) as data:
            return {k[len("input:"):]: data[k] for k in data.files if k.startswith("input:")}
    return random_inputs(load(path), seed=0)


def _run(path: Path, feeds, backend="executor"):
    model = load(path)
    if backend == "onnxruntime":
        assert only_standard_ops(model)
        return run_onnxruntime(model, feeds)
    return Executor(model).run(feeds)


def _script(name: str, src: Path, out: Path) -> None:
    proc = subprocess.run([sys.executable, str(TRANSFORMS / name), str(src), str(out)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert out.is_file()


def _max_steps(before, after, step):
    return max(float(np.max(np.abs(before[k] - after[k]) / step)) for k in before)


def test_to_qcdq(tmp_path):
    src, out = GEN / "intquant_mlp.onnx", tmp_path / "qcdq.onnx"
    _script("to_qcdq.py", src, out)
    feeds = _inputs(src)
    assert _max_steps(_run(src, feeds), _run(out, feeds, "onnxruntime"), 1 / 64) <= 1.0


def test_to_qop(tmp_path):
    src, out = GEN / "intquant_per_channel_conv.onnx", tmp_path / "qop.onnx"
    _script("to_qop.py", src, out)
    ops = {n.op_type for n in load(out).graph}
    assert ops & {"QLinearConv", "ConvInteger"}  # ConvInteger + float epilogue where the bias is not exact in int32
    feeds = _inputs(src)
    assert _max_steps(_run(src, feeds), _run(out, feeds, "onnxruntime"), 1 / 16) <= 1.0


def test_fold_weights(tmp_path):
    src, out = GEN / "intquant_mlp.onnx", tmp_path / "folded.onnx"
    _script("fold_weights.py", src, out)
    before, after = load(src), load(out)
    count = lambda m: sum(n.op_type in ("Quant", "IntQuant") for n in m.graph)  # noqa: E731
    assert count(after) == count(before) - 1  # the weight quantizer is gone, activations stay
    feeds = _inputs(src)
    a, b = _run(src, feeds), _run(out, feeds)
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_custom_pass_example(tmp_path):
    src, out = GEN / "intquant_mlp.onnx", tmp_path / "tagged.onnx"
    _script("custom_pass_example.py", src, out)
    names = {n.name for n in load(out).graph if n.op_type == "Quant"}
    assert "q_Quant_w" in names and "q_Quant_x" in names
    feeds = _inputs(src)
    a, b = _run(src, feeds), _run(out, feeds)
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_strip_bipolar_to_sign(tmp_path):
    src, out = GEN / "bipolarquant.onnx", tmp_path / "sign.onnx"
    _script("strip_bipolar_to_sign.py", src, out)
    model = load(out)
    ops = [n.op_type for n in model.graph]
    assert ops.count("BipolarQuant") == 1  # the per-channel-scale node stays
    assert "Where" in ops and "GreaterOrEqual" in ops
    feeds = _inputs(src)
    assert (feeds["x"] == 0).any()
    a, b = _run(src, feeds), _run(out, feeds)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert (b["y1"][feeds["x"] == 0] == 1.0).all()


def test_strip_bipolar_on_tfc_runs_in_onnxruntime(tmp_path):
    src = ROOT / "models" / "tfc" / "TFC_1W1A.onnx"
    out = tmp_path / "tfc_sign.onnx"
    _script("strip_bipolar_to_sign.py", src, out)
    feeds = {"0": np.random.default_rng(0).uniform(0, 1, size=(1, 1, 28, 28)).astype(np.float32)}
    a, b = _run(src, feeds), _run(out, feeds)
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("script", ["to_qcdq.py", "custom_pass_example.py"])
def test_qonnx_transform_cli(tmp_path, script):
    src, out = GEN / "intquant_mlp.onnx", tmp_path / "out.onnx"
    assert qonnx_main(["transform", str(TRANSFORMS / script), str(src), str(out)]) == 0
    feeds = _inputs(src)
    assert _max_steps(_run(src, feeds), _run(out, feeds), 1 / 64) <= 1.0
    assert qonnx_main(["transform", str(TRANSFORMS / script), str(src), str(out)]) == 2  # exists, no --force


def test_qonnx_transform_main_convention(tmp_path):
    script = tmp_path / "copy.py"
    script.write_text("import shutil\ndef main(a, b):\n    shutil.copy(a, b)\n    return 0\n")
    out = tmp_path / "out.onnx"
    assert qonnx_main(["transform", str(script), str(GEN / "trunc_v1.onnx"), str(out)]) == 0
    assert out.read_bytes() == (GEN / "trunc_v1.onnx").read_bytes()


def test_qonnx_transform_rejects_bad_script(tmp_path):
    script = tmp_path / "nothing.py"
    script.write_text("x = 1\n")
    with pytest.raises(Exception):
        load_script(script)
    assert qonnx_main(["transform", str(script), str(GEN / "trunc_v1.onnx"), str(tmp_path / "o.onnx")]) == 2
