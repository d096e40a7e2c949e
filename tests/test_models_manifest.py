"""The shipped zoo manifest: well-formed, checksums match, references present and independent."""

from __future__ import annotations

import hashlib
import tomllib
from pathlib import Path

import numpy as np
import pytest

from qonnx_tools.zoo import FLOWS

MODELS = Path(__file__).resolve().parents[1] / "models"
MANIFEST = tomllib.loads((MODELS / "manifest.toml").read_text(encoding="utf-8"))["model"]
REQUIRED = ("file", "description", "source", "licence", "sha256", "inputs", "reference", "flows")


@pytest.mark.parametrize("entry", MANIFEST, ids=[m["file"] for m in MANIFEST])
def test_manifest_entry(entry):
    for key in REQUIRED:
        assert key in entry, f"{entry['file']}: missing {key}"
    path = MODELS / entry["file"]
    assert hashlib.sha256(path.read_bytes()).hexdigest() == entry["sha256"]
    assert entry["flows"] and set(entry["flows"]) <= set(FLOWS)
    for spec in entry["inputs"]:
        assert {"name", "shape", "dtype"} <= set(spec) and ("range" in spec or "datatype" in spec)
    if entry["reference"]:
        with np.load(MODELS / entry["reference"]) as data:
            assert any(k.startswith("input:") for k in data.files)
            assert any(k.startswith("output:") for k in data.files)
    else:
        assert entry.get("reference_note"), "a model without reference outputs must say why"
    if not entry["source"].startswith("generated"):
        licence_file = entry["licence"].split("(")[-1].rstrip(")")
        assert (MODELS / licence_file).is_file(), "third-party models keep their licence file beside them"


def test_every_model_file_is_listed():
    listed = {m["file"] for m in MANIFEST}
    on_disk = {str(p.relative_to(MODELS)) for p in MODELS.rglob("*.onnx")}
    assert on_disk == listed


def test_generator_does_not_use_qonnx_tools():
    text = (MODELS / "generate.py").read_text(encoding="utf-8")
    assert "import qonnx_tools" not in text and "from qonnx_tools" not in text


def test_generator_is_deterministic():
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, str(MODELS / "generate.py"), "--check"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
