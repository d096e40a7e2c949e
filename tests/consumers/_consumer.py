"""Finding and driving a third-party consumer that lives in its own virtual environment.

Real consumers (qonnx 1.0, onnxslim, ...) must never become dependencies of this
project: each one is installed in ``<project root>/.venv-<name>`` (or wherever
``$QONNX_TOOLS_<NAME>_PYTHON`` points) and driven through a subprocess that runs
a small script of this folder and prints one JSON line per model file.

Test modules load this file by path (tests run with ``--import-mode=importlib``
and ``tests/`` is not a package).
"""

from __future__ import annotations

import json
import os
import subprocess
import traceback
from collections.abc import Sequence
from pathlib import Path

from qonnx_tools.testing import brevitas_corpus, shared_dir, shared_models

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent


def consumer_python(name: str, probe_import: Sequence[str]) -> str | None:
    """The interpreter of consumer ``name``, or None when there is none that imports ``probe_import``.

    Looked up as ``$QONNX_TOOLS_<NAME>_PYTHON`` (name upper-cased, ``-`` -> ``_``), then
    ``<project root>/.venv-<name>/bin/python``.
    """
    env_var = f"QONNX_TOOLS_{name.upper().replace('-', '_')}_PYTHON"
    for candidate in (os.environ.get(env_var), str(ROOT / f".venv-{name}" / "bin" / "python")):
        if candidate and Path(candidate).is_file():
            probe = subprocess.run([candidate, "-c", "import " + ", ".join(probe_import)], capture_output=True)
            if probe.returncode == 0:
                return candidate
    return None


def cleanup_corpus() -> list[str]:
    """Corpus files (relative to ../shared/models) cleaned for the consumer checks: every Brevitas
    qonnx.onnx / qcdq.onnx and every QONNX model-zoo file; [] when ../shared is absent."""
    root = shared_dir()
    if root is None:
        return []
    files = brevitas_corpus() + shared_models("qonnx-model-zoo/**/*.onnx")
    return sorted(str(p.relative_to(root / "models")) for p in files)


def qcdq_corpus() -> list[str]:
    """The Brevitas qonnx.onnx files (relative to ../shared/models) converted to QCDQ."""
    return [rel for rel in cleanup_corpus() if rel.startswith("brevitas/") and rel.endswith("/qonnx.onnx")]


def build(folder: Path, rels: list[str], make) -> dict[str, Path | str]:
    """``make(source, destination)`` for each corpus file ``rels``: rel -> written file, or the error
    text when building it failed (the test using it then fails)."""
    root = shared_dir()
    out: dict[str, Path | str] = {}
    for rel in rels:
        try:
            out[rel] = make(root / "models" / rel, folder / rel.replace("/", "__"))
        except Exception:
            out[rel] = traceback.format_exc(limit=4)
    return out


def cleaned(src: Path, dst: Path) -> Path:
    """Our ``cleanup`` of ``src``, saved to ``dst``."""
    from qonnx_tools.model_io import load, save
    from qonnx_tools.passes import run_passes

    model = load(src)
    run_passes(model, "cleanup")
    return save(model, dst)


def converted_qcdq(src: Path, dst: Path) -> Path:
    """Our ``convert --to qcdq`` of ``src`` (default options), saved to ``dst``."""
    from qonnx_tools.convert import convert
    from qonnx_tools.model_io import load, save

    model = load(src)
    convert(model, to="qcdq")
    return save(model, dst)


def run_consumer(python: str, script: str, paths: Sequence[Path], *, timeout: float = 1800) -> dict[str, dict]:
    """Run ``script`` (a file of this folder) with ``python`` on ``paths``; its JSON lines by file path."""
    run = subprocess.run([python, str(HERE / script), *map(str, paths)], capture_output=True, text=True,
                         timeout=timeout)
    if run.returncode != 0:
        raise RuntimeError(f"{script} exited with {run.returncode}:\n{run.stderr[-3000:]}")
    results = {}
    for line in run.stdout.splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            results[record["file"]] = record
    missing = [str(p) for p in paths if str(p) not in results]
    if missing:
        raise RuntimeError(f"{script} gave no result for {missing}:\n{run.stderr[-3000:]}")
    return results


def removal_message(result: dict) -> str:
    """A readable account of what a consumer removed or added (for assertion messages)."""
    lines = [f"nodes {result['before']['nodes']} -> {result['after']['nodes']}, "
             f"graph inputs {result['before']['inputs']} -> {result['after']['inputs']}",
             f"op types removed {result['removed_ops']}, added {result['added_ops']}"]
    for step in result.get("steps", []):
        for desc in step["removed"]:
            lines.append(f"  [{step['name']}] - {desc}")
        for desc in step["added"]:
            lines.append(f"  [{step['name']}] + {desc}")
    for note in result.get("notes", []):
        lines.append(f"  note: {note}")
    return "\n".join(lines)
