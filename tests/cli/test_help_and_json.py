"""Every option documents itself (help text, its default) and every command has ``--json``
whose output on stdout is one JSON document (issue 16, bullet 4)."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import onnx
import pytest

from qonnx_tools.cli.main import build_parser

ROOT = Path(__file__).resolve().parents[2]
TFC = ROOT / "models" / "tfc" / "TFC_2W2A.onnx"
#: no default worth stating: flags, and options whose absence means "not given"
_NO_DEFAULT = (None, False, [], argparse.SUPPRESS)


def _commands(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()):
    """(command path, its parser) for every leaf command."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield prefix, parser
    for action in subs:
        for name, sub in action.choices.items():
            yield from _commands(sub, (*prefix, name))


COMMANDS = dict(_commands(build_parser()))


def _options(parser: argparse.ArgumentParser):
    return [a for a in parser._actions if not isinstance(a, (argparse._HelpAction, argparse._VersionAction))]


@pytest.mark.parametrize("command", list(COMMANDS), ids=" ".join)
def test_every_option_has_help_stating_its_default(command):
    for action in _options(COMMANDS[command]):
        name = "/".join(action.option_strings) or action.dest
        assert action.help and action.help.strip(), f"{' '.join(command)} {name}: no help text"
        if action.default not in _NO_DEFAULT and not action.required:
            assert "default" in action.help, f"{' '.join(command)} {name}: default {action.default!r} not stated"


@pytest.mark.parametrize("command", list(COMMANDS), ids=" ".join)
def test_every_command_has_json(command):
    flags = {flag for action in _options(COMMANDS[command]) for flag in action.option_strings}
    assert "--json" in flags


def qonnx(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "qonnx_tools.cli.main", *args], capture_output=True, text=True,
                          timeout=300, cwd=ROOT)


@pytest.mark.parametrize("argv, keys", [
    (["cleanup", str(TFC), "-o", "{out}", "--verify"], {"ops_before", "ops_after", "passes", "verify", "written"}),
    (["streamline", str(TFC), "-o", "{out}"], {"ops_before", "ops_after", "declined", "non_integer", "written"}),
    (["transform", str(ROOT / "transforms" / "to_qcdq.py"), str(TFC), "{out}"], {"function", "ops_after"}),
    (["exec", str(TFC), "--random"], {"outputs"}),
], ids=["cleanup", "streamline", "transform", "exec"])
def test_json_output_is_one_document(tmp_path, argv, keys):
    out = tmp_path / "out.onnx"
    run = qonnx(*[a.replace("{out}", str(out)) for a in argv], "--json")
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)  # nothing else on stdout
    assert keys <= set(report), sorted(report)
    if "{out}" in argv:
        assert out.is_file() and report.get("output") == str(out)
    if argv[0] == "transform":  # the report counts what onnx's own parser finds in the written file
        written = Counter(n.op_type for n in onnx.load(str(out)).graph.node)
        assert report["ops_after"]["QuantizeLinear"] == written["QuantizeLinear"] > 0
        assert "qonnx.custom_op.general:Quant" in report["ops_before"] and written["Quant"] == 0
        assert "qonnx.custom_op.general:Quant" not in report["ops_after"]
