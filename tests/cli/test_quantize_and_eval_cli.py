"""``qonnx quantize`` and ``qonnx eval`` on the shipped digits classifier: reports, written files, and one
clear line (exit 2, nothing written) for each kind of bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx

from qonnx_tools.cli.main import main

DIGITS = Path(__file__).resolve().parents[2] / "models" / "digits"
MODEL, CALIB, TEST = (str(DIGITS / f) for f in ("digits_mlp.onnx", "digits_calib.npz", "digits_test.npz"))


def _error(capsys) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_quantize_writes_a_qonnx_model_that_eval_scores(tmp_path, capsys):
    out = tmp_path / "w4a4.onnx"
    config = tmp_path / "plan.toml"
    config.write_text('method = "percentile"\npercentile = 99.9\n\n[[layer]]\nmatch = "*"\nop = "MatMul"\nweights = 4\n')
    assert main(["quantize", MODEL, "-o", str(out), "--calib", CALIB, "--acts", "4", "--config", str(config),
                 "--per-channel", "--batch-size", "64", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["samples"] == 256 and report["batches"] == 4 and report["output"] == str(out)
    assert {(t["kind"], t["bits"]) for t in report["tensors"]} == {("activation", 4), ("weight", 4), ("bias", 32)}
    assert all(t["method"] == "percentile" for t in report["tensors"] if t["kind"] == "activation")
    written = onnx.load(str(out))
    assert sum(n.op_type == "Quant" for n in written.graph.node) == len(report["tensors"]) == 9
    assert main(["eval", str(out), "--data", TEST, "--labels", "y", "--json"]) == 0
    scored = json.loads(capsys.readouterr().out)
    assert scored["samples"] == 450 and scored["correct"] >= 433  # measured 435 (float: 439)
    labels = tmp_path / "labels.npy"
    with np.load(TEST) as data:
        np.save(labels, data["y"])
    assert main(["eval", MODEL, "--data", TEST, "--labels", str(labels), "--backend", "onnxruntime"]) == 0
    assert capsys.readouterr().out.strip() == "top-1 97.56% (439/450, onnxruntime)"


def test_bad_inputs_are_one_line_and_write_nothing(tmp_path, capsys):
    out = tmp_path / "q.onnx"
    np.savez(tmp_path / "wrong.npz", a=np.zeros((4, 64), np.float32), b=np.zeros((4, 64), np.float32))
    assert main(["quantize", MODEL, "-o", str(out), "--calib", str(tmp_path / "wrong.npz")]) == 2
    assert "wrong.npz: holds ['a', 'b']; the model's inputs are ['x']" in _error(capsys)
    (tmp_path / "bad.toml").write_text("weights = [\n")
    assert main(["quantize", MODEL, "-o", str(out), "--calib", CALIB, "--config", str(tmp_path / "bad.toml")]) == 2
    assert "bad.toml: not valid TOML" in _error(capsys)
    assert main(["quantize", MODEL, "-o", str(out), "--calib", CALIB, "--percentile", "120"]) == 2
    assert "percentile=120.0" in _error(capsys)
    assert not out.exists()
    assert main(["eval", MODEL, "--data", TEST, "--labels", "nope"]) == 2
    assert "--labels nope: neither an .npy file nor a key of" in _error(capsys)
    assert main(["quantize", MODEL, "-o", MODEL, "--calib", CALIB]) == 2
    assert "refusing to overwrite the input" in _error(capsys)
