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
import shutil
import subprocess
import traceback
from collections.abc import Hashable, Sequence
from pathlib import Path
from typing import TypeVar

import numpy as np

from qonnx_tools.testing import TIE_SENSITIVE, brevitas_corpus, shared_dir, shared_models

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


def streamlined(src: Path, dst: Path) -> Path:
    """Our ``streamline`` of ``src``, saved to ``dst``."""
    from qonnx_tools.model_io import load, save
    from qonnx_tools.streamline import Streamline

    model = load(src)
    Streamline()(model)
    return save(model, dst)


def converted_qcdq(src: Path, dst: Path, target: str | None = None) -> Path:
    """Our ``convert --to qcdq [--target T]`` of ``src`` (default options: the ort profile), saved to ``dst``."""
    from qonnx_tools.convert import convert
    from qonnx_tools.model_io import load, save

    model = load(src)
    convert(model, to="qcdq", target=target)
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


# -- runtimes of our QCDQ output (test_openvino_consumer.py, test_tvm_consumer.py, test_qonnx_qcdq_consumer.py) --

class Case:
    """One corpus model: our QCDQ file staged with its inputs, and what it must compute.

    A plain class, not a dataclass: this module is loaded by path without a ``sys.modules`` entry, which
    ``@dataclass`` needs to resolve string annotations."""

    def __init__(self, rel: str, path: Path | None, error: str = "", *, expected: dict | None = None,
                 corpus: dict | None = None, steps: dict | None = None):
        self.rel = rel
        self.path = path  # the staged QCDQ file (None: our conversion failed, see ``error``)
        self.error = error
        self.expected = {} if expected is None else expected  # executor on the QONNX original
        self.corpus = corpus  # io.npz 'output' under the graph output's name
        self.steps = {} if steps is None else steps


def stage(folder: Path, built: dict[str, Path | str]) -> dict[str, Case]:
    """Copy each built QCDQ file into ``folder`` beside ``<stem>.inputs.npz`` (the corpus input) and compute the
    expected outputs: the executor on the QONNX original, and io.npz's reference output when present."""
    from qonnx_tools.executor import Executor
    from qonnx_tools.model_io import load
    from qonnx_tools.verify import output_steps

    root = shared_dir() / "models"
    cases = {}
    for rel, built_path in built.items():
        if not isinstance(built_path, Path):
            cases[rel] = Case(rel, None, f"our conversion to QCDQ failed:\n{built_path}")
            continue
        try:
            original = load(root / rel)
            executor = Executor(original)
            (name,) = executor.input_names
            io = np.load((root / rel).parent / "io.npz")
            feeds = {name: io["input"]}
            ours = load(built_path)
            initialized = set(ours.graph.initializers)
            (ours_input,) = [v.name for v in ours.graph.inputs if v.name not in initialized]
            path = folder / built_path.name
            shutil.copyfile(built_path, path)
            np.savez(path.with_suffix(".inputs.npz"), **{ours_input: feeds[name]})
            expected = executor.run(feeds)
            steps = output_steps(original)
            for out_name, step in output_steps(ours).items():
                steps.setdefault(out_name, step)
        except Exception:
            cases[rel] = Case(rel, None, f"staging failed:\n{traceback.format_exc(limit=4)}")
            continue
        corpus = {next(iter(expected)): io["output"]} if "output" in io and len(expected) == 1 else None
        cases[rel] = Case(rel, path, expected=expected, corpus=corpus, steps=steps)
    return cases


K = TypeVar("K", bound=Hashable)


def run_staged(python: str, script: str, cases: dict[K, Case]) -> dict[K, tuple[Case, dict | None]]:
    """``run_consumer`` on the staged files of ``cases``: key -> (case, its JSON record; None when not staged)."""
    paths = [c.path for c in cases.values() if c.path is not None]
    by_file = run_consumer(python, script, paths)
    return {key: (c, by_file[str(c.path)] if c.path is not None else None) for key, c in cases.items()}


def judge(case: Case, got: dict[str, np.ndarray]) -> tuple[list[str], str]:
    """What is wrong with ``got`` (empty: it agrees) and its figures against both expected sets."""
    from qonnx_tools.verify import compare, format_count, format_table, match_outputs

    problems, figures = [], []
    tie_sensitive = Path(case.rel).parent.name in TIE_SENSITIVE
    for label, expected in (("executor", case.expected), ("io.npz", case.corpus)):
        if expected is None:
            continue
        report = compare(expected, got, steps=case.steps, backend_a=label, backend_b="consumer")
        for o in report.outputs:
            steps = "" if o.max_steps is None else f", max {o.max_steps:.3g} steps"
            figures.append(f"vs {label}: {o.verdict}, {format_count(o.outside_tolerance, o.elements)} off"
                           f"{steps}, max abs {o.max_abs:.3g}")
        if tie_sensitive:
            paired = match_outputs(expected, got)
            for out_name, want in expected.items():
                if not np.array_equal(np.argmax(want, -1), np.argmax(paired[out_name], -1)):
                    problems.append(f"top-1 class differs from {label} on output {out_name!r}:\n"
                                    + format_table(report))
        elif not report.ok:
            problems.append(f"differs from {label}:\n" + format_table(report))
    return problems, "; ".join(figures)


def consumer_outputs(record: dict) -> dict[str, np.ndarray]:
    """The outputs a consumer script saved (the .npz named by ``record["outputs"]``)."""
    return dict(np.load(record["outputs"]))


# -- hls4ml (test_hls4ml_consumer.py, benchmarks/fpga_consumers.py) ----------------------------------------

def samples(model, io_path: Path | None, extra: int, *, low: float = 0.0) -> np.ndarray:
    """Inputs for a one-input model, one sample per row with batch 1: io.npz's 'input' (when given and present)
    followed by ``extra`` seeded samples uniform in [low, 1)."""
    shape = [d if isinstance(d, int) else 1 for d in model.graph.inputs[0].shape]
    parts = [np.random.default_rng(0).uniform(low, 1, [extra] + shape[1:]).astype(np.float32)]
    if io_path is not None and io_path.exists():
        parts.insert(0, np.load(io_path)["input"].reshape([-1] + shape[1:]).astype(np.float32))
    return np.concatenate(parts)


def per_sample(model, x: np.ndarray) -> np.ndarray:
    """Our executor on ``model``, row by row of ``x`` (rows grouped to the model's fixed batch size when it has
    one; a trailing partial group is dropped): one flattened output row per sample."""
    from qonnx_tools.executor import Executor

    executor = Executor(model)
    (name,) = executor.input_names
    shape = list(model.graph.inputs[0].shape)
    batch = shape[0] if isinstance(shape[0], int) else 1
    rows = []
    for i in range(0, len(x) - len(x) % batch, batch):
        out = next(iter(executor.run({name: x[i:i + batch].reshape([batch] + shape[1:])}).values()))
        rows.append(out.reshape(batch, -1))
    return np.concatenate(rows)


def tie_distance(model, x: np.ndarray, *, skip_graph_inputs: bool = False) -> np.ndarray:
    """Per sample of ``x`` (batch 1 each): the smallest distance from a rounding boundary (in the quantizer's
    input units, not clipped away) of any Quant/IntQuant of a computed tensor, as our executor feeds it. A
    sample whose distance is below a consumer's fixed-point error may round differently there and still
    be right. ``skip_graph_inputs``: leave out quantizers reading a graph input (a consumer that holds the
    input and 1/scale exactly rounds its ties as we do)."""
    from qonnx_tools.constants import constant_array
    from qonnx_tools.executor import Executor
    from qonnx_tools.ops._rounding import int_bounds

    executor = Executor(model)
    (name,) = executor.input_names
    quantizers = [n for n in model.graph if n.op_type in ("Quant", "IntQuant")
                  and constant_array(n.inputs[0]) is None and constant_array(n.inputs[1]) is not None
                  and constant_array(n.inputs[3]) is not None
                  and not (skip_graph_inputs and n.inputs[0].is_graph_input())]
    distances = []
    for sample in x:
        values = executor.run({name: sample[None]}, keep_intermediates=True)
        nearest = np.inf
        for q in quantizers:
            scale = np.abs(constant_array(q.inputs[1]))
            scaled = values[q.inputs[0].name] / scale
            low, high = int_bounds(bool(q.attributes.get_int("signed", 1)), bool(q.attributes.get_int("narrow", 0)),
                                   np.rint(constant_array(q.inputs[3])))
            keep = (scaled > low - 1) & (scaled < high + 1)  # clipped values round to the bound anyway
            if keep.any():
                away = np.abs(scaled - np.floor(scaled) - 0.5) * np.broadcast_to(scale, scaled.shape)
                nearest = min(nearest, float(away[keep].min()))
        distances.append(nearest)
    return np.asarray(distances)


def stage_hls4ml(folder: Path, source: Path, name: str, x: np.ndarray) -> dict:
    """``prepare(model, "hls4ml")`` of ``source`` saved as ``folder/name.onnx`` with ``name.hls4ml.json`` (our
    precisions) and ``name.inputs.npz`` (``x``); the prepare result and our executor's outputs on the prepared
    and the original model."""
    import json

    from qonnx_tools.model_io import load, save
    from qonnx_tools.prepare import prepare

    original = load(source)
    model = load(source)
    result = prepare(model, "hls4ml")
    path = save(model, folder / f"{name}.onnx")
    np.savez(folder / f"{name}.inputs.npz", **{model.graph.inputs[0].name: x})
    (folder / f"{name}.hls4ml.json").write_text(json.dumps(result.hls4ml_config))
    return {"path": path, "result": result, "prepared": per_sample(model, x), "original": per_sample(original, x),
            "ties": tie_distance(model, x)}


def stage_original(folder: Path, source: Path, name: str, x: np.ndarray) -> Path:
    """``source`` copied to ``folder/name.onnx`` with ``x`` reshaped to its input's sample shape beside it."""
    from qonnx_tools.model_io import load

    model = load(source)
    path = folder / f"{name}.onnx"
    shutil.copyfile(source, path)
    shape = [d if isinstance(d, int) else 1 for d in model.graph.inputs[0].shape]
    np.savez(folder / f"{name}.inputs.npz", **{model.graph.inputs[0].name: x.reshape([-1] + shape[1:])})
    return path
