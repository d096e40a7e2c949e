"""Validating a model zoo: every model, every flow it must pass, with a verdict and a reason.

A zoo is a folder with a ``manifest.toml`` (see ``models/manifest.toml``: one
``[[model]]`` table per file with ``file``, ``sha256``, ``inputs``, ``reference``
and ``flows``), or any folder of ``.onnx`` files, for which defaults apply:
``exec`` and ``cleanup`` for every model plus ``convert:qcdq`` for files with
QONNX ops; an ``io.npz`` beside a file (the shared Brevitas corpus) is its reference.

Which flows run: the manifest's ``flows`` (or the folder defaults) say what each model
must pass. Flows asked for explicitly (``validate(..., flows=[...])``, the CLI's
``--flows``) replace that list: each of them runs on every model, whether the manifest
claims it for the model or not, so a flow the manifest does not claim may fail there.
A requested flow is never dropped: one that cannot run on a model fails with the reason
(``detail`` "cannot run: ...", ``status`` "cannot-run" in JSON).

Per model: ``check`` (sha256 when the manifest gives one, load, ``onnx.checker``),
then each flow:

* ``exec``: the executor's outputs agree with the reference outputs; without a
  reference, the model only has to run (finite outputs);
* ``cleanup``: ``run_passes(model, "cleanup")`` leaves the executor's outputs unchanged;
* ``convert:qcdq`` / ``convert:qop`` / ``convert:qonnx``: the conversion succeeds
  with no unconverted node and the result (backend ``auto``: onnxruntime with
  optimisations off when only standard ops remain and it can load them, else the
  executor) agrees with the executor's run of the original. It cannot run on a model
  with no quantizer in any form (``qonnx_tools.info``'s forms), nor when nothing
  converts: no QONNX quantizer to lower (qcdq, qop) and a result that is not in the
  target form already (qcdq: Q/DQ or DynamicQuantizeLinear quantizers and no QONNX,
  QLinear or Integer op; qop: a QLinear/Integer op; qonnx: a QONNX quantizer). A model
  already in the target form passes (the detail says so);
* ``streamline``: the ``streamline`` pass (when registered) keeps the executor's
  outputs; it cannot run on a model without QONNX quantizers (it works on those).

"Agrees" is ``qonnx_tools.verify``'s rule with its default ``Tolerance()``, the
same as ``qonnx verify`` and every ``--verify``; a failed flow keeps its
``VerifyReport`` (printed as the verify table under the failure, in JSON under
``"verify"``).

Reference files: ``input:<name>`` / ``output:<name>`` arrays, or ``input`` /
``output`` for a single-input, single-output model (the corpus' io.npz).
"""

from __future__ import annotations

import hashlib
import sys
import time
import tomllib
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from qonnx_tools.errors import BadInputError
from qonnx_tools.verify import Tolerance, VerifyReport

FLOWS = ("exec", "cleanup", "convert:qcdq", "convert:qop", "convert:qonnx", "streamline")
SEED = 0


@dataclass
class ModelEntry:
    """One model to validate: where it is, what it must pass, what to compare against."""

    name: str
    path: Path
    flows: list[str]
    sha256: str = ""
    reference: Path | None = None
    inputs: list[dict] = field(default_factory=list)
    note: str = ""


class FlowCannotRun(Exception):
    """A requested flow does not apply to the model (nothing to convert, nothing to streamline)."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"cannot run: {reason}")


@dataclass
class FlowResult:
    flow: str
    ok: bool
    seconds: float
    detail: str = ""  # the reason on failure, a short remark on success
    report: VerifyReport | None = None  # the output comparison, for flows that compare outputs
    cannot_run: bool = False  # failed because the flow does not apply to the model

    @property
    def status(self) -> str:
        return "passed" if self.ok else ("cannot-run" if self.cannot_run else "failed")

    def to_dict(self) -> dict:
        return {"flow": self.flow, "ok": self.ok, "status": self.status, "seconds": self.seconds,
                "detail": self.detail, "verify": None if self.report is None else self.report.to_dict()}


@dataclass
class ModelResult:
    name: str
    path: str
    results: list[FlowResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results)

    def to_dict(self) -> dict:
        return {"name": self.name, "path": self.path, "ok": self.ok, "results": [r.to_dict() for r in self.results]}


# -- discovery ---------------------------------------------------------------------------------

def parse_flows(text: str | None) -> list[str] | None:
    """``"exec,cleanup"`` -> ["exec", "cleanup"]; BadInputError for unknown flow names."""
    if text is None:
        return None
    flows = [f.strip() for f in text.split(",") if f.strip()]
    unknown = [f for f in flows if f not in FLOWS]
    if unknown:
        raise BadInputError(f"unknown flow(s) {', '.join(unknown)}; choose from {', '.join(FLOWS)}")
    return flows


def discover(directory: str | Path) -> list[ModelEntry]:
    """The models of ``directory``: from its manifest.toml, or every .onnx file below it."""
    root = Path(directory)
    if root.is_file() and root.suffix == ".toml":
        return load_manifest(root)
    if not root.is_dir():
        raise BadInputError(f"{root}: no such directory")
    manifest = root / "manifest.toml"
    if manifest.is_file():
        return load_manifest(manifest)
    entries = []
    for path in sorted(root.rglob("*.onnx")):
        rel = path.relative_to(root)
        name = str(rel.with_suffix("")) if rel.parent != Path(".") else rel.stem
        io_npz = path.parent / "io.npz"
        entries.append(ModelEntry(name, path, _default_flows(path), reference=io_npz if io_npz.is_file() else None))
    if not entries:
        raise BadInputError(f"{root}: no manifest.toml and no .onnx files")
    return entries


def load_manifest(path: Path) -> list[ModelEntry]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise BadInputError(f"{path}: not a readable manifest ({exc})") from exc
    entries = []
    for k, table in enumerate(data.get("model", [])):
        if "file" not in table:
            raise BadInputError(f"{path}: [[model]] #{k + 1} has no 'file'")
        file = path.parent / table["file"]
        flows = list(table.get("flows", ["exec"]))
        unknown = [f for f in flows if f not in FLOWS]
        if unknown:
            raise BadInputError(f"{path}: {table['file']}: unknown flow(s) {', '.join(unknown)}")
        ref = table.get("reference", "")
        entries.append(
            ModelEntry(
                name=table.get("name") or str(Path(table["file"]).with_suffix("")),
                path=file,
                flows=flows,
                sha256=table.get("sha256", ""),
                reference=path.parent / ref if ref else None,
                inputs=list(table.get("inputs", [])),
                note=table.get("reference_note", ""),
            )
        )
    return entries


def _default_flows(path: Path) -> list[str]:
    import onnx

    from qonnx_tools.domains import QONNX, canonical_domain

    flows = ["exec", "cleanup"]
    try:
        proto = onnx.load(str(path), load_external_data=False)
        if any(canonical_domain(n.domain) == QONNX for n in proto.graph.node):
            flows.append("convert:qcdq")
    except Exception:
        pass  # the check step reports unreadable files
    return flows


# -- validation of one model -------------------------------------------------------------------

def validate_model(entry: ModelEntry, flows: Sequence[str] | None = None) -> ModelResult:
    """Run the check and the entry's flows on one model; ``flows``, when given, replaces the entry's list."""
    result = ModelResult(entry.name, str(entry.path))
    start = time.perf_counter()
    try:
        note = _check(entry)
        result.results.append(FlowResult("check", True, time.perf_counter() - start, note))
    except Exception as exc:
        result.results.append(FlowResult("check", False, time.perf_counter() - start, _reason(exc)))
        return result
    wanted = list(dict.fromkeys(entry.flows if flows is None else flows))
    try:
        base = _Baseline(entry)
    except Exception as exc:
        for flow in wanted:
            result.results.append(FlowResult(flow, False, 0.0, f"could not run the model: {_reason(exc)}"))
        return result
    for flow in wanted:
        start = time.perf_counter()
        try:
            detail, report = _FLOW_FUNCS[flow](entry, base)
            extra = base.seconds if flow == "exec" else 0.0
            result.results.append(FlowResult(flow, True, time.perf_counter() - start + extra, detail, report))
        except Exception as exc:
            result.results.append(FlowResult(flow, False, time.perf_counter() - start, _reason(exc),
                                             getattr(exc, "report", None), isinstance(exc, FlowCannotRun)))
    return result


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def _check(entry: ModelEntry) -> str:
    import onnx

    from qonnx_tools.model_io import load

    if not entry.path.is_file():
        raise BadInputError(f"{entry.path}: no such file")
    if entry.sha256:
        digest = hashlib.sha256(entry.path.read_bytes()).hexdigest()
        if digest != entry.sha256:
            raise BadInputError(f"sha256 {digest[:12]}... differs from the manifest's {entry.sha256[:12]}...")
    model = load(entry.path)
    notes = ["sha256 ok"] if entry.sha256 else []
    try:
        onnx.checker.check_model(str(entry.path))
    except onnx.checker.ValidationError as exc:
        # Old exports use aliased QONNX domains (onnx.brevitas) without importing them;
        # accept the file when the checker passes once the domains are normalised.
        from qonnx_tools._ir import ir

        try:
            onnx.checker.check_model(ir.to_proto(model))
        except onnx.checker.ValidationError:
            raise exc from None
        notes.append("checker ok after domain normalisation")
    return "; ".join(notes)


class _Baseline:
    """Inputs, reference outputs (if any) and the executor's outputs on the original model."""

    def __init__(self, entry: ModelEntry) -> None:
        from qonnx_tools.executor import Executor
        from qonnx_tools.model_io import load
        from qonnx_tools.verify import output_steps

        start = time.perf_counter()
        model = load(entry.path)
        self.reference: dict[str, np.ndarray] | None = None
        self.inputs = self._inputs(entry, model)
        self.steps = output_steps(model)
        self.outputs = Executor(model).run(self.inputs)
        self.seconds = time.perf_counter() - start  # charged to the exec flow

    def _inputs(self, entry: ModelEntry, model) -> dict[str, np.ndarray]:
        from qonnx_tools.runtime import random_inputs

        data_inputs = [v.name for v in model.graph.inputs if v.name not in model.graph.initializers]
        out_names = [v.name for v in model.graph.outputs]
        if entry.reference is not None:
            try:
                with np.load(entry.reference, allow_pickle=False) as data:
                    arrays = {k: data[k] for k in data.files}
            except Exception as exc:
                raise BadInputError(f"{entry.reference}: not a readable .npz ({_reason(exc)})") from exc
            inputs = {k[len("input:"):]: v for k, v in arrays.items() if k.startswith("input:")}
            outputs = {k[len("output:"):]: v for k, v in arrays.items() if k.startswith("output:")}
            if not inputs and "input" in arrays and len(data_inputs) == 1:
                inputs = {data_inputs[0]: arrays["input"]}
            if not outputs and "output" in arrays and len(out_names) == 1:
                outputs = {out_names[0]: arrays["output"]}
            missing = [n for n in data_inputs if n not in inputs]
            if missing or not outputs:
                raise BadInputError(f"{entry.reference.name}: no arrays for input(s) {missing} / outputs")
            self.reference = outputs
            return inputs
        feeds = random_inputs(model, seed=SEED)
        rng = np.random.default_rng(SEED)
        for spec in entry.inputs:  # declared ranges from the manifest
            name = spec.get("name")
            if name in feeds and isinstance(spec.get("range"), list):
                lo, hi = spec["range"]
                shape = tuple(spec.get("shape", feeds[name].shape))
                feeds[name] = rng.uniform(lo, hi, size=shape).astype(feeds[name].dtype)
        return feeds


class FlowMismatch(AssertionError):
    """A flow's outputs disagree; ``report`` holds the comparison."""

    def __init__(self, message: str, report: VerifyReport) -> None:
        super().__init__(message)
        self.report = report


def _compare(expected: dict, got: dict, steps: dict, what: str, backend_a: str, backend_b: str,
             notes: Sequence[str] = ()) -> tuple[str, VerifyReport]:
    """(short remark, report) when the outputs agree under the default Tolerance; FlowMismatch otherwise."""
    from qonnx_tools.verify import compare, summary

    report = compare(expected, got, steps=steps, tolerance=Tolerance(), backend_a=backend_a, backend_b=backend_b,
                     notes=notes)
    if not report.ok:
        raise FlowMismatch(f"{what}: {summary(report)}", report)
    return summary(report), report


def _flow_exec(entry: ModelEntry, base: _Baseline) -> tuple[str, VerifyReport | None]:
    if base.reference is None:
        bad = [n for n, v in base.outputs.items() if np.asarray(v).dtype.kind == "f" and not np.all(np.isfinite(v))]
        if bad:
            raise AssertionError(f"non-finite values in output(s) {bad} (no reference to compare with)")
        return "ran (no reference)", None
    return _compare(base.reference, base.outputs, base.steps, "executor vs reference", "reference", "executor")


def _fresh(entry: ModelEntry):
    from qonnx_tools.model_io import load

    return load(entry.path)


def _forms(model):
    """Quantizers of ``model`` per form (qonnx_tools.info.FORMS)."""
    from qonnx_tools.info import quantizer_forms

    return quantizer_forms(model)


def _describe_forms(forms) -> str:
    from qonnx_tools.info import FORMS

    return ", ".join(f"{FORMS[f]} {n}" for f, n in forms.items() if n) or "no quantizer"


def _flow_pass(pipeline: str) -> Callable[[ModelEntry, _Baseline], tuple[str, VerifyReport | None]]:
    def run(entry: ModelEntry, base: _Baseline) -> tuple[str, VerifyReport | None]:
        from qonnx_tools.executor import Executor
        from qonnx_tools.passes import registered_passes, run_passes

        if pipeline not in registered_passes():
            raise BadInputError(f"pass {pipeline!r} is not available in this installation")
        model = _fresh(entry)
        if pipeline == "streamline":
            forms = _forms(model)
            if not forms.get("qonnx"):
                raise FlowCannotRun(f"streamline works on QONNX quantizers and the model has none "
                                    f"({_describe_forms(forms)})")
        run_passes(model, pipeline)
        got = Executor(model).run(base.inputs)
        return _compare(base.outputs, got, base.steps, f"after {pipeline}", "executor", "executor")

    return run


def _in_target_form(target: str, forms) -> bool:
    """Whether quantizer ``forms`` are those of a ``target`` model (see the module docstring)."""
    from qonnx_tools.info import QDQ_FORMS

    if target == "qcdq":  # standard Q/DQ (DynamicQuantizeLinear included), no quantized operator
        return any(forms.get(f) for f in (*QDQ_FORMS, "dynamic")) and not any(
            forms.get(f) for f in ("qonnx", "qlinear", "integer"))
    if target == "qop":
        return bool(forms.get("qlinear") or forms.get("integer"))
    return bool(forms.get("qonnx"))


_TARGET_FORM = {
    "qcdq": "Q/DQ or DynamicQuantizeLinear quantizers and no QONNX, QLinear or Integer op",
    "qop": "a QLinear or Integer operator",
    "qonnx": "a QONNX quantizer",
}


def _flow_convert(target: str) -> Callable[[ModelEntry, _Baseline], tuple[str, VerifyReport | None]]:
    def run(entry: ModelEntry, base: _Baseline) -> tuple[str, VerifyReport | None]:
        from qonnx_tools.convert import convert
        from qonnx_tools.info import op_counts
        from qonnx_tools.verify import Runner

        model = _fresh(entry)
        before = _forms(model)
        if not before:
            raise FlowCannotRun(f"nothing converts to {target}: the model has no quantizer in any form "
                                "(QONNX op, Q/DQ, QLinear/Integer op)")
        ops_before = op_counts(model)
        convert(model, to=target, allow_partial=False)
        after = _forms(model)
        lowered = target in ("qcdq", "qop") and bool(before.get("qonnx"))
        if not (lowered or _in_target_form(target, after)):
            raise FlowCannotRun(f"nothing converts to {target}: no QONNX quantizer to lower, and the result is not "
                                f"{target} (needs {_TARGET_FORM[target]}; it has {_describe_forms(after)})")
        runner = Runner(model, "auto", label="B")
        got = runner.run(base.inputs)
        notes = [runner.note] if runner.note else []
        what = f"{target} in {runner.backend} vs original"
        detail, report = _compare(base.outputs, got, base.steps, what, "executor", runner.backend, notes)
        already = f"already {target}, unchanged; " if op_counts(model) == ops_before else ""
        return f"{already}{detail} ({runner.backend})", report

    return run


_FLOW_FUNCS: dict[str, Callable[[ModelEntry, _Baseline], tuple[str, VerifyReport | None]]] = {
    "exec": _flow_exec,
    "cleanup": _flow_pass("cleanup"),
    "convert:qcdq": _flow_convert("qcdq"),
    "convert:qop": _flow_convert("qop"),
    "convert:qonnx": _flow_convert("qonnx"),
    "streamline": _flow_pass("streamline"),
}


# -- running a zoo -----------------------------------------------------------------------------

def validate(
    entries: Iterable[ModelEntry],
    *,
    flows: Sequence[str] | None = None,
    jobs: int = 1,
    progress: Callable[[int, int, ModelResult], None] | None = None,
) -> list[ModelResult]:
    """Validate every entry (in ``jobs`` processes when > 1); results in entry order."""
    entries = list(entries)
    results: list[ModelResult | None] = [None] * len(entries)
    done = 0
    if jobs <= 1 or len(entries) <= 1:
        for i, entry in enumerate(entries):
            results[i] = validate_model(entry, flows)
            done += 1
            if progress:
                progress(done, len(entries), results[i])
    else:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            futures = {pool.submit(validate_model, entry, flows): i for i, entry in enumerate(entries)}
            for future in as_completed(futures):
                i = futures[future]
                try:
                    results[i] = future.result()
                except Exception as exc:  # a worker died
                    results[i] = ModelResult(entries[i].name, str(entries[i].path),
                                             [FlowResult("check", False, 0.0, f"worker failed: {_reason(exc)}")])
                done += 1
                if progress:
                    progress(done, len(entries), results[i])
    return [r for r in results if r is not None]


def format_table(results: Sequence[ModelResult], elapsed: float | None = None) -> str:
    """A model x flow table (✓ time / ✗), the failure reasons below it (with the verify table of
    failed comparisons), and a summary line."""
    from qonnx_tools.verify import format_table as format_verify_table

    columns = ["check"] + [f for f in FLOWS if any(r.flow == f for m in results for r in m.results)]
    cells = []
    failures = []
    for m in results:
        row = [m.name]
        by_flow = {r.flow: r for r in m.results}
        for col in columns:
            r = by_flow.get(col)
            if r is None:
                row.append("–")
            elif r.ok:
                row.append(f"✓ {r.seconds:.2f}s")
            else:
                failures.append((m.name, col, r.detail, r.report))
                row.append(f"✗ [{len(failures)}]")
        cells.append(row)
    header = ["model"] + columns
    widths = [max(len(h), *(len(row[k]) for row in cells)) if cells else len(h) for k, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths))]
    lines.append("  ".join("-" * w for w in widths))
    for row in cells:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths)))
    for k, (model, flow, detail, report) in enumerate(failures, 1):
        lines.append(f"[{k}] {model} {flow}: {detail}")
        if report is not None:
            lines.append(format_verify_table(report, indent="    "))
    n_flows = sum(len(m.results) for m in results)
    failed_models = sum(not m.ok for m in results)
    summary = (
        f"{len(results)} models, {n_flows} checks: {n_flows - len(failures)} passed, {len(failures)} failed"
        f" ({failed_models} model(s) failing)"
    )
    if elapsed is not None:
        summary += f" in {elapsed:.1f} s"
    lines.append(summary)
    return "\n".join(lines)


def progress_printer(stream=None) -> Callable[[int, int, ModelResult], None]:
    """A progress callback: a rewritten status line on a terminal, plain lines otherwise."""
    stream = stream or sys.stderr
    tty = hasattr(stream, "isatty") and stream.isatty()

    def report(done: int, total: int, result: ModelResult) -> None:
        verdict = "ok" if result.ok else "FAILED"
        if tty:
            end = "\n" if done == total else ""
            stream.write(f"\r\x1b[K[{done}/{total}] {result.name}: {verdict}{end}")
        else:
            stream.write(f"[{done}/{total}] {result.name}: {verdict}\n")
        stream.flush()

    return report
