"""CLI contract: exit codes, one-line errors, no tracebacks (run as a real subprocess)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from qonnx_tools.testing import shared_models

MODELS = shared_models()


def qonnx(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "qonnx_tools.cli.main", *args], capture_output=True, text=True, timeout=120)


def test_missing_file_is_one_line_exit_2(tmp_path):
    result = qonnx("info", str(tmp_path / "absent.onnx"))
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert result.stderr.startswith("error: ") and "absent.onnx" in result.stderr
    assert "Traceback" not in result.stderr


def test_garbage_file_exit_2_and_debug_shows_traceback(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x00garbage\xff" * 10)
    plain = qonnx("info", str(bad))
    assert plain.returncode == 2 and "Traceback" not in plain.stderr and "bad.onnx" in plain.stderr
    debug = qonnx("--debug", "info", str(bad))
    assert debug.returncode == 2 and "Traceback" in debug.stderr


def test_usage_error_exit_2():
    assert qonnx("no-such-command").returncode == 2


@pytest.mark.shared
@pytest.mark.parametrize("path", MODELS[:3] + MODELS[-4:], ids=lambda p: f"{p.parent.name}/{p.name}")
def test_info_json_on_real_models(path):
    result = qonnx("info", "--json", str(path))
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["num_nodes"] == sum(data["op_counts"].values()) > 0
    text = qonnx("info", str(path))
    assert text.returncode == 0 and "quantizers:" in text.stdout


def test_numeric_warnings_become_one_line(monkeypatch, capsys):
    """RuntimeWarnings raised while a command runs (NumPy: one per occurrence) are summarised in one line."""
    import numpy as np

    from qonnx_tools.cli import exec_cmd
    from qonnx_tools.cli.main import main

    def noisy_run(args):
        with np.errstate(over="warn", invalid="warn"):
            for _ in range(3):
                np.exp(np.float32(1000.0))
            np.float32(np.inf) - np.float32(np.inf)
        return 0

    monkeypatch.setattr(exec_cmd, "run", noisy_run)
    assert main(["exec", "whatever.onnx"]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["warning: 4 numeric warning(s) while running (invalid value; overflow); --debug shows where"]
