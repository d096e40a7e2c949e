"""``qonnx zoo validate``: the shipped zoo passes, perturbed references fail, the shared corpus reports."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from qonnx_tools import zoo
from qonnx_tools.cli.main import main
from qonnx_tools.testing import shared_dir

MODELS = Path(__file__).resolve().parents[1] / "models"


def test_validate_shipped_models_passes(capsys):
    assert main(["zoo", "validate", str(MODELS), "--jobs", "2"]) == 0
    out = capsys.readouterr().out
    assert "generated/intquant_rounding_modes" in out and "tfc/TFC_2W2A" in out
    assert "0 failed" in out and "✗" not in out


def _copy_zoo(tmp_path: Path) -> Path:
    dest = tmp_path / "models"
    shutil.copytree(MODELS, dest, ignore=shutil.ignore_patterns("__pycache__"))
    return dest


def test_perturbed_reference_fails_naming_model_and_flow(tmp_path, capsys):
    dest = _copy_zoo(tmp_path)
    npz = dest / "generated" / "trunc_v2.npz"
    with np.load(npz) as data:
        arrays = {k: data[k] for k in data.files}
    arrays["output:y0"] = arrays["output:y0"] + 10.0 * arrays["output:y0"].std() + 1.0
    np.savez(npz, **arrays)
    code = main(["zoo", "validate", str(dest), "--flows", "exec"])
    out = capsys.readouterr().out
    assert code == 1
    failures = [line for line in out.splitlines() if line.startswith("[")]
    assert len(failures) == 1 and "generated/trunc_v2 exec" in failures[0] and "y0" in failures[0]
    # the verify table of the failed comparison follows the failure line; every one of the
    # 2 x 32 elements of y0 moved by at least 1.0
    lines = out.splitlines()
    k = lines.index(failures[0])
    assert lines[k + 1].startswith("    verify: A reference vs B executor")
    (row,) = [line for line in lines[k + 2:] if line.split()[:1] == ["y0"]]
    assert "64 (100.00 %)" in row and row.rstrip().endswith("MISMATCH")


def test_one_step_off_on_a_quantized_output_fails_by_default(tmp_path, capsys):
    """Same rule as ``qonnx verify``: a quantization step is never accepted unless max_steps allows it."""
    dest = _copy_zoo(tmp_path)
    npz = dest / "generated" / "intquant_rounding_modes.npz"
    with np.load(npz) as data:
        arrays = {k: data[k] for k in data.files}
    arrays["output:y_floor"][0, 0] += np.float32(0.25)  # the IntQuant scale: one step, on 1 of 2 x 64 elements
    np.savez(npz, **arrays)
    code = main(["zoo", "validate", str(dest), "--flows", "exec", "--json"])
    assert code == 1
    report = json.loads(capsys.readouterr().out)
    (model,) = [m for m in report["models"] if not m["ok"]]
    assert model["name"] == "generated/intquant_rounding_modes"
    (flow,) = [r for r in model["results"] if not r["ok"]]
    assert flow["flow"] == "exec"
    assert "output 'y_floor': max abs 0.25" in flow["detail"] and "max steps 1," in flow["detail"]
    assert "1 (0.78 %) elements differing" in flow["detail"]  # 1 / 128 = 0.78125 %
    verify = flow["verify"]
    assert (verify["backend_a"], verify["backend_b"]) == ("reference", "executor")
    bad = [o for o in verify["outputs"] if not o["ok"]]
    assert [(o["name"], o["max_steps"], o["differing"], o["elements"]) for o in bad] == [("y_floor", 1.0, 1, 128)]


def test_checksum_mismatch_fails(tmp_path, capsys):
    dest = _copy_zoo(tmp_path)
    text = (dest / "manifest.toml").read_text()
    (dest / "manifest.toml").write_text(text.replace('sha256 = "db8de1', 'sha256 = "00000', 1))
    assert main(["zoo", "validate", str(dest), "--flows", "exec", "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    bad = [m for m in report["models"] if not m["ok"]]
    assert [m["name"] for m in bad] == ["tfc/TFC_2W2A"] and "sha256" in bad[0]["results"][0]["detail"]


def test_folder_without_manifest_uses_defaults(tmp_path, capsys):
    shutil.copy(MODELS / "generated" / "intquant_mlp.onnx", tmp_path / "a.onnx")
    entries = zoo.discover(tmp_path)
    assert [(e.name, e.flows) for e in entries] == [("a", ["exec", "cleanup", "convert:qcdq"])]
    assert main(["zoo", "validate", str(tmp_path)]) == 0
    assert "a " in capsys.readouterr().out


def test_bad_arguments(tmp_path):
    assert main(["zoo", "validate", str(tmp_path / "missing")]) == 2
    assert main(["zoo", "validate", str(MODELS), "--flows", "exec,nope"]) == 2


@pytest.mark.shared
def test_validate_shared_corpus(capsys):
    root = shared_dir()
    if root is None:
        pytest.skip("shared corpus not available")
    code = main(["zoo", "validate", str(root / "models"), "--flows", "exec,cleanup,convert:qcdq", "--jobs", "4", "--json"])
    report = json.loads(capsys.readouterr().out)
    names = {m["name"] for m in report["models"]}
    assert "brevitas/seed_qgemm/qonnx" in names and "qonnx-model-zoo/kws/kwsmlp_w3a3" in names
    for model in report["models"]:
        assert model["results"][0]["flow"] == "check"
    assert code in (0, 1)
    assert code == (0 if all(m["ok"] for m in report["models"]) else 1)
