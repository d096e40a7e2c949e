"""The README contract: its two set-up commands are the ones CI and users run."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
COMMANDS = re.findall(r"^(pip install -e [^\n]+)$", README, flags=re.M)


def test_readme_has_exactly_the_two_setup_commands():
    assert len(COMMANDS) == 2, COMMANDS
    assert COMMANDS[1] == "pip install -e '.[test]' && pytest"
    ci = (ROOT / ".ci" / "run").read_text()
    assert COMMANDS[1] in ci, ".ci/run must run exactly the README's test command"


def test_main_job_command_runs(tmp_path):
    """Command (a) minus the install step: it must succeed on the shipped model, verification included."""
    job = COMMANDS[0].split("&&", 1)[1].strip()
    args = shlex.split(job)
    assert args[0] == "qonnx"
    args = [str(ROOT / a) if a.startswith("models/") else a for a in args[1:]]
    result = subprocess.run(
        [sys.executable, "-m", "qonnx_tools.cli.main", *args], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "verify" in result.stdout and "MISMATCH" not in result.stdout
