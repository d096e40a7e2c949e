"""Verification: do two models (or a model and reference outputs) compute the same thing?

The one place that decides which backend runs each side, when two outputs agree
(the tolerance policy, with the same defaults for every caller: ``qonnx verify``,
``convert/cleanup/streamline --verify`` and ``qonnx zoo validate``), and how the
result is reported (``VerifyReport``) and printed (``format_table``).

Backends, per side:

* ``executor``: the NumPy reference executor (runs every QONNX op);
* ``onnxruntime``: onnxruntime's CPU provider with graph optimisations disabled
  (``ORT_DISABLE_ALL``): its optimisations rewrite QDQ graphs and change outputs,
  so only the unoptimised run is an exact, independent reference;
* ``onnxruntime-optimized``: onnxruntime with its graph optimisations (QDQ groups fused into
  integer kernels that requantize in fixed point: a step off on a small fraction of elements
  is expected, and reported) except ``WeightBiasQuantization``; ``onnxruntime-default``:
  every optimisation, as a user gets it without options (see ``runtime.ORT_PROFILES``);
* ``auto``: onnxruntime when the model has only standard (ai.onnx) ops and
  onnxruntime can load it, else the executor; the report's notes say why the
  executor was used (QONNX ops, or onnxruntime has no kernel, e.g. a
  QLinearMatMul of int8 by uint8).

The rule, per output, over every element of every run (``a``: side A, the
reference; ``b``: side B). Its verdict is the first that holds:

1. ``exact``: every element is equal (NaN equals NaN);
2. ``tolerance`` (float outputs only): every element has
   ``|a - b| <= atol + rtol * |a|`` and, when the output is quantized, differs by
   less than half a quantization step: a difference of a step is a flipped rounding
   decision, never float noise, however large the values are;
3. ``steps`` (quantized outputs, only when ``max_steps > 0``): the elements that
   fail rule 2 are at most ``max_off_fraction`` of all elements and none differs
   by more than ``max_steps`` steps;
4. otherwise ``mismatch``.

Integer outputs never use ``atol``/``rtol``: any difference there is a whole unit.

A quantization *step* is what ``output_steps`` finds, as before: the ``scale`` of
the IntQuant/Quant producing the output (twice the scale for BipolarQuant, whose
levels are -scale and +scale), the ``out_scale`` of a MultiThreshold, the scalar
scale of a DequantizeLinear, looked for through data movement that keeps one
scalar step (Reshape, Flatten, Identity, Transpose, Squeeze, Unsqueeze, MaxPool,
Relu); per-channel scales count elementwise. Side A's model decides, side B's when
A's has none. An integer-typed output without such a producer has step 1.

Defaults (``Tolerance()``) and why:

* ``atol = 1e-5``, ``rtol = 1e-5``: two correct float32 implementations sum in
  different orders (BLAS blocking, onnxruntime's kernels, folded constants), which
  moves results by a few ulps (float32 ulp at 1.0: 1.2e-7), e.g. 2.4e-7 on the
  mini-ResNet and ProxylessNAS outputs. ``atol`` covers outputs near zero, where a
  relative bound is meaningless; ``rtol`` (about 80 ulps) covers large values and
  long accumulations. Both stay far below any quantization step a real model uses,
  and rule 2's half-step guard covers the rest.
* ``max_steps = 0``: a quantized output that moved by a step is a real
  difference, reported as a mismatch unless the caller accepts it explicitly
  (``--max-steps 1``, e.g. for deep tie-sensitive models where float32 near-ties
  round either way).
* ``max_off_fraction = 0.001``: with ``max_steps > 0``, at most 0.1 % of the
  elements may be off; a systematic error (a wrong zero-point, a wrong rounding
  mode) shifts far more elements than near-ties do.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

import numpy as np

from qonnx_tools._ir import ir
from qonnx_tools.constants import constant_array
from qonnx_tools.domains import QONNX, STANDARD
from qonnx_tools.errors import BadInputError, ExecutionError, first_line
from qonnx_tools.runtime import ort_session

BACKENDS = ("executor", "onnxruntime", "onnxruntime-optimized", "onnxruntime-default", "auto")
#: onnxruntime profile (``runtime.ORT_PROFILES``) of each onnxruntime backend
_ORT_PROFILE = {"onnxruntime": "off", "onnxruntime-optimized": "optimized", "onnxruntime-default": "default"}

ATOL = 1e-5
RTOL = 1e-5
MAX_STEPS = 0.0
MAX_OFF_FRACTION = 0.001
#: slack when comparing a measured number of steps with ``max_steps`` (float32 scales)
_STEP_SLACK = 1e-6

VERDICTS = ("exact", "tolerance", "steps", "mismatch")


# -- the policy --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Tolerance:
    """When two outputs agree (see the module docstring for the rule and the defaults)."""

    atol: float = ATOL
    rtol: float = RTOL
    max_steps: float = MAX_STEPS
    max_off_fraction: float = MAX_OFF_FRACTION

    def __post_init__(self) -> None:
        for name in ("atol", "rtol", "max_steps"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise BadInputError(f"{name.replace('_', '-')} must be a finite number >= 0, got {value!r}")
        if not (isinstance(self.max_off_fraction, (int, float)) and 0 <= self.max_off_fraction <= 1):
            raise BadInputError(f"max-off-fraction must be between 0 and 1, got {self.max_off_fraction!r}")

    def describe(self) -> str:
        text = f"exact, or |a-b| <= {self.atol:g} + {self.rtol:g}*|a| (float outputs)"
        if self.max_steps > 0:
            text += (f", or <= {self.max_steps:g} quantization step(s) on at most "
                     f"{format_percent(self.max_off_fraction)} of elements")
        else:
            text += "; no quantization step accepted (max steps 0)"
        return text

    def to_dict(self) -> dict:
        return {"atol": self.atol, "rtol": self.rtol, "max_steps": self.max_steps,
                "max_off_fraction": self.max_off_fraction}


# -- quantization steps ------------------------------------------------------------------------

#: Ops through which a quantized output keeps its (scalar) quantization step.
_STEP_PRESERVING = {"Reshape", "Flatten", "Identity", "Transpose", "Squeeze", "Unsqueeze", "MaxPool", "Relu"}


def output_steps(model: ir.Model) -> dict[str, np.ndarray]:
    """Quantization step of each graph output produced by a quantizer (through data movement)."""
    steps = {}
    for output in model.graph.outputs:
        step = _step_of(output)
        if step is not None:
            steps[output.name] = step
    return steps


def _step_of(value: ir.Value, depth: int = 0) -> np.ndarray | None:
    node = value.producer()
    if node is None or depth > 8:
        return None
    if node.domain == QONNX and node.op_type in ("IntQuant", "Quant", "BipolarQuant"):
        scale = constant_array(node.inputs[1])
        if scale is None:
            return None
        return scale * (2.0 if node.op_type == "BipolarQuant" else 1.0)
    if node.domain == QONNX and node.op_type == "MultiThreshold":
        attr = node.attributes.get("out_scale")
        return np.asarray(attr.value if attr is not None else 1.0, dtype=np.float64)
    if node.domain == STANDARD and node.op_type == "DequantizeLinear":
        scale = constant_array(node.inputs[1])
        return scale if scale is not None and scale.size == 1 else None
    if node.domain == STANDARD and node.op_type in _STEP_PRESERVING and node.inputs and node.inputs[0] is not None:
        step = _step_of(node.inputs[0], depth + 1)
        return step if step is not None and np.size(step) == 1 else None
    return None


# -- backends ----------------------------------------------------------------------------------

def non_standard_ops(model: ir.Model) -> list[str]:
    """``domain:op`` of every node outside ai.onnx (subgraphs included), sorted, once each."""
    return sorted({f"{node.domain}:{node.op_type}" for node in ir.traversal.RecursiveGraphIterator(model.graph)
                   if node.domain != STANDARD})


class Runner:
    """Runs one model on the backend chosen for it (``executor``, ``onnxruntime`` or ``auto``).

    ``backend`` is what runs ("executor" or "onnxruntime"); ``note`` says why ``auto``
    did not choose onnxruntime (None otherwise). The backend is chosen once, when the
    runner is built: an onnxruntime session or an executor, reused for every run.
    """

    def __init__(self, model: ir.Model, backend: str = "auto", *, label: str = "") -> None:
        if backend not in BACKENDS:
            raise BadInputError(f"backend {backend!r}: choose from {', '.join(BACKENDS)}")
        self.requested = backend
        self.note: str | None = None
        self._session = None
        self._executor = None
        who = f"{label}: " if label else ""
        if backend == "auto":
            foreign = non_standard_ops(model)
            if foreign:
                shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
                self.note = f"{who}auto chose the executor: the model has non-standard ops ({shown})"
            else:
                try:
                    self._session = ort_session(model)
                except ExecutionError as exc:
                    self.note = f"{who}auto fell back to the executor: {exc}"
        elif backend in _ORT_PROFILE:
            self._session = ort_session(model, optimize=_ORT_PROFILE[backend])
        if self._session is None:
            from qonnx_tools.executor import Executor

            self._executor = Executor(model)
        self.backend = ("onnxruntime" if backend == "auto" else backend) if self._session is not None else "executor"

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self._executor is not None:
            return self._executor.run(feeds)
        session = self._session
        names = [o.name for o in session.get_outputs()]
        inputs = {i.name: np.asarray(feeds[i.name]) for i in session.get_inputs() if i.name in feeds}
        try:
            return dict(zip(names, session.run(names, inputs)))
        except Exception as exc:
            raise ExecutionError(f"onnxruntime could not run the model: {first_line(exc)}") from exc


# -- the report --------------------------------------------------------------------------------

@dataclass
class OutputReport:
    """How side B's output differs from side A's, over every element of every run."""

    name: str
    shape: tuple[int, ...]
    backend_a: str
    backend_b: str
    max_abs: float
    max_rel: float  # |a-b| / |a|; inf where a == 0 and b differs
    max_steps: float | None  # largest difference in quantization steps (None: the output is not quantized)
    elements: int
    differing: int  # elements not exactly equal
    outside_tolerance: int  # elements failing rule 2 (float tolerance, half a step)
    verdict: str  # exact | tolerance | steps | mismatch

    @property
    def ok(self) -> bool:
        return self.verdict != "mismatch"

    @property
    def pct_differing(self) -> float:
        return 100.0 * self.differing / self.elements if self.elements else 0.0

    def to_dict(self) -> dict:
        return {
            "name": self.name, "shape": list(self.shape), "backend_a": self.backend_a, "backend_b": self.backend_b,
            "max_abs": _json_float(self.max_abs), "max_rel": _json_float(self.max_rel),
            "max_steps": None if self.max_steps is None else _json_float(self.max_steps),
            "elements": self.elements, "differing": self.differing, "pct_differing": self.pct_differing,
            "outside_tolerance": self.outside_tolerance, "verdict": self.verdict, "ok": self.ok,
        }


@dataclass
class VerifyReport:
    """Per-output verdicts of one comparison (A: reference side, B: compared side)."""

    outputs: list[OutputReport]
    backend_a: str
    backend_b: str
    tolerance: Tolerance = field(default_factory=Tolerance)
    runs: int = 1
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(o.ok for o in self.outputs)

    @property
    def mismatched(self) -> list[str]:
        return [o.name for o in self.outputs if not o.ok]

    def to_dict(self) -> dict:
        return {
            "ok": self.ok, "backend_a": self.backend_a, "backend_b": self.backend_b, "runs": self.runs,
            "tolerance": self.tolerance.to_dict(), "notes": list(self.notes),
            "outputs": [o.to_dict() for o in self.outputs],
        }


def _json_float(x: float) -> float | str:
    """JSON has no inf/nan: those become the strings "inf", "-inf", "nan"."""
    return x if math.isfinite(x) else str(x)


# -- comparing arrays --------------------------------------------------------------------------

def _is_float(dtype: np.dtype) -> bool:
    if dtype.kind in "fc":
        return True
    return dtype.kind == "V" and dtype.name.startswith(("float", "bfloat"))  # ml_dtypes float8/bfloat16


@dataclass
class _Stats:
    """Per-output figures of one or more runs; merged by adding counts and taking maxima."""

    name: str
    shape: tuple[int, ...]
    is_float: bool
    quantized: bool
    elements: int = 0
    differing: int = 0
    outside: int = 0
    max_abs: float = 0.0
    max_rel: float = 0.0
    max_steps: float = 0.0

    def add(self, a: np.ndarray, b: np.ndarray, step: np.ndarray | None, tol: Tolerance) -> None:
        if self.is_float:
            wide = np.complex128 if "c" in (a.dtype.kind, b.dtype.kind) else np.float64
            fa, fb = a.astype(wide), b.astype(wide)
            equal = (fa == fb) | (np.isnan(fa) & np.isnan(fb))
            with np.errstate(invalid="ignore", over="ignore"):
                diff = np.abs(fa - fb)
            diff = np.where(equal, 0.0, np.where(np.isnan(diff), np.inf, diff))
            ref = np.abs(fa)
        else:
            diff = np.abs(a.astype(np.int64) - b.astype(np.int64)).astype(np.float64)
            ref = np.abs(a.astype(np.float64))
        differs = diff > 0
        with np.errstate(divide="ignore", invalid="ignore"):
            rel = np.where(differs, diff / ref, 0.0)
            rel = np.where(np.isnan(rel), np.inf, rel)  # a NaN on side A only
            # written as "not within" so that a NaN bound (A is NaN, B is not) counts as outside
            outside = differs & ~(diff <= tol.atol + tol.rtol * ref) if self.is_float else differs
        if step is not None:
            with np.errstate(divide="ignore", invalid="ignore"):
                in_steps = np.where(differs, diff / np.abs(step), 0.0)
            outside = outside | (in_steps >= 0.5)
            self.max_steps = max(self.max_steps, float(in_steps.max()) if in_steps.size else 0.0)
        self.elements += int(diff.size)
        self.differing += int(differs.sum())
        self.outside += int(outside.sum())
        if diff.size:
            self.max_abs = max(self.max_abs, float(diff.max()))
            self.max_rel = max(self.max_rel, float(rel.max()))

    def verdict(self, tol: Tolerance) -> str:
        if self.differing == 0:
            return "exact"
        if self.is_float and self.outside == 0:
            return "tolerance"
        if (self.quantized and tol.max_steps > 0 and self.max_steps <= tol.max_steps + _STEP_SLACK
                and self.outside <= tol.max_off_fraction * self.elements):
            return "steps"
        return "mismatch"

    def report(self, tol: Tolerance, backend_a: str, backend_b: str) -> OutputReport:
        return OutputReport(
            self.name, self.shape, backend_a, backend_b, self.max_abs, self.max_rel,
            self.max_steps if self.quantized else None, self.elements, self.differing, self.outside,
            self.verdict(tol),
        )


class _Comparison:
    """Accumulates the comparison of A's and B's outputs over runs, then reports."""

    def __init__(self, tolerance: Tolerance | None, steps: Mapping[str, np.ndarray] | None) -> None:
        self.tolerance = tolerance or Tolerance()
        self.steps = dict(steps or {})
        self.stats: dict[str, _Stats] = {}
        self.runs = 0

    def add(self, expected: Mapping[str, np.ndarray], got: Mapping[str, np.ndarray]) -> None:
        got = match_outputs(expected, got)
        for name, a in expected.items():
            a, b = np.asarray(a), np.asarray(got[name])
            if a.shape != b.shape:
                raise BadInputError(f"output {name!r}: shape {b.shape} differs from reference {a.shape}")
            is_float = _is_float(a.dtype) or _is_float(b.dtype)
            step = self.steps.get(name)
            if step is None and not is_float:
                step = np.asarray(1.0)  # an integer output: one unit is one step
            if step is not None:
                try:
                    step = np.broadcast_to(np.asarray(step, dtype=np.float64), a.shape)
                except ValueError:
                    step = None  # a step that does not fit the output's shape: not usable
            stats = self.stats.get(name)
            if stats is None:
                stats = self.stats[name] = _Stats(name, tuple(a.shape), is_float, step is not None)
            elif stats.quantized and step is None:
                stats.quantized = False
            stats.add(a, b, step if stats.quantized else None, self.tolerance)
        self.runs += 1

    def report(self, backend_a: str, backend_b: str, notes: Iterable[str] = ()) -> VerifyReport:
        outputs = [s.report(self.tolerance, backend_a, backend_b) for s in self.stats.values()]
        return VerifyReport(outputs, backend_a, backend_b, self.tolerance, self.runs, list(notes))


def match_outputs(expected: Mapping[str, np.ndarray], got: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``got`` keyed by ``expected``'s names: by name, or by position when the two sides name them differently."""
    if set(expected) <= set(got):
        return {name: got[name] for name in expected}
    if len(expected) != len(got):
        missing = sorted(set(expected) - set(got))
        raise BadInputError(
            f"output(s) {missing} are missing from the compared run, and the models have different numbers of "
            f"outputs ({len(expected)} vs {len(got)}), so they cannot be paired by position"
        )
    return dict(zip(expected, got.values()))


def compare(
    expected: Mapping[str, np.ndarray],
    got: Mapping[str, np.ndarray],
    *,
    steps: Mapping[str, np.ndarray] | None = None,
    tolerance: Tolerance | None = None,
    backend_a: str = "executor",
    backend_b: str = "executor",
    notes: Iterable[str] = (),
) -> VerifyReport:
    """Compare one run's outputs (``expected`` from side A, ``got`` from side B) under ``tolerance``.

    ``steps``: quantization step per output name of ``expected`` (``output_steps``);
    integer outputs without one have step 1.
    """
    comparison = _Comparison(tolerance, steps)
    comparison.add(expected, got)
    return comparison.report(backend_a, backend_b, notes)


def _with_steps_of(steps: dict[str, np.ndarray], names_a: Sequence[str], model_b: ir.Model) -> dict[str, np.ndarray]:
    """``steps`` (by A's output names) completed from B's: same name, else same position."""
    steps_b = output_steps(model_b)
    names_b = [v.name for v in model_b.graph.outputs]
    for k, name in enumerate(names_a):
        if name not in steps:
            other = name if name in names_b else (names_b[k] if k < len(names_b) else None)
            if other in steps_b:
                steps[name] = steps_b[other]
    return steps


def verify(
    model_a: ir.Model,
    model_b: ir.Model,
    feeds: Mapping[str, np.ndarray] | Sequence[Mapping[str, np.ndarray]],
    *,
    backend_a: str = "executor",
    backend_b: str = "auto",
    tolerance: Tolerance | None = None,
) -> VerifyReport:
    """Run A and B on the same inputs (one feed dict, or a list for several runs) and compare."""
    runs = [feeds] if isinstance(feeds, Mapping) else list(feeds)
    if not runs:
        raise BadInputError("verify: no inputs to run")
    runner_a = Runner(model_a, backend_a, label="A")
    runner_b = Runner(model_b, backend_b, label="B")
    steps = _with_steps_of(output_steps(model_a), [v.name for v in model_a.graph.outputs], model_b)
    comparison = _Comparison(tolerance, steps)
    for one in runs:
        comparison.add(runner_a.run(one), runner_b.run(one))
    notes = [n for n in (runner_a.note, runner_b.note) if n]
    return comparison.report(runner_a.backend, runner_b.backend, notes)


@dataclass
class Reference:
    """Side A captured before a command transforms the model in place: inputs, outputs, steps."""

    feeds: dict[str, np.ndarray]
    outputs: dict[str, np.ndarray]
    steps: dict[str, np.ndarray]
    backend: str
    notes: list[str] = field(default_factory=list)


def reference_run(model: ir.Model, feeds: Mapping[str, np.ndarray], *, backend: str = "executor") -> Reference:
    """Run ``model`` (before transforming it) and keep what ``verify_against`` needs."""
    runner = Runner(model, backend, label="A")
    return Reference(dict(feeds), runner.run(feeds), output_steps(model), runner.backend,
                     [runner.note] if runner.note else [])


def verify_against(
    reference: Reference, model: ir.Model, *, backend: str = "auto", tolerance: Tolerance | None = None
) -> VerifyReport:
    """Run the transformed ``model`` on the reference's inputs and compare with the reference's outputs."""
    runner = Runner(model, backend, label="B")
    steps = _with_steps_of(dict(reference.steps), list(reference.outputs), model)
    comparison = _Comparison(tolerance, steps)
    comparison.add(reference.outputs, runner.run(reference.feeds))
    notes = reference.notes + ([runner.note] if runner.note else [])
    return comparison.report(reference.backend, runner.backend, notes)


#: What fused integer kernels may change: onnxruntime's QLinearConv/QGemm/QLinearAdd requantize in
#: fixed point, which flips a rounding decision by one step on a small fraction of elements
#: (0.17-0.21 % measured on a two-Conv test graph). A systematic error moves far more than 1 %.
OPTIMIZED_MAX_STEPS = 1.0
OPTIMIZED_MAX_OFF_FRACTION = 0.01


@dataclass
class DeploymentVerification:
    """A standard-ops model checked in onnxruntime the way it will be deployed.

    ``exact``: optimisations off, under the caller's tolerance: the decisive check (the model
    computes what the original does, as written);
    ``optimized``: every optimisation except WeightBiasQuantization, judged within
    ``OPTIMIZED_MAX_STEPS`` on ``OPTIMIZED_MAX_OFF_FRACTION`` of elements, and
    ``default``: onnxruntime as a user gets it (WeightBiasQuantization rounds float biases of
    QDQ Conv/Gemm to int32). Both are reported with their verdicts, not decisive: they measure
    onnxruntime's kernels on this CPU, which the file cannot change (e.g. on x86 without VNNI,
    its u8 x s8 kernels saturate int16 pair sums: Brevitas' own QCDQ of a full-range int8 CNN,
    qop_cnn_s8, is 28 steps off there).
    """

    exact: VerifyReport
    optimized: VerifyReport | None = None
    default: VerifyReport | None = None

    @property
    def ok(self) -> bool:
        return self.exact.ok

    @property
    def mismatched(self) -> list[str]:
        return self.exact.mismatched

    def reports(self) -> list[tuple[str, VerifyReport]]:
        return [(title, r) for title, r in (("verify", self.exact), ("verify optimized (reported, not judged)", self.optimized),
                                            ("verify default (reported, not judged)", self.default)) if r is not None]

    def to_dict(self) -> dict:
        return {"ok": self.ok, **{key: r.to_dict() for key, r in
                                  (("exact", self.exact), ("optimized", self.optimized), ("default", self.default))
                                  if r is not None}}

    def format(self, indent: str = "") -> str:
        text = [format_table(r, indent=indent, title=title) for title, r in self.reports()]
        if self.optimized is not None and not self.optimized.ok:
            from qonnx_tools.runtime import ort_u8s8_saturates

            cpu = " On this CPU onnxruntime's u8 x s8 integer kernels saturate int16 pair sums (x86 without " \
                  "VNNI), which full-range 8-bit weights reach." if ort_u8s8_saturates() else ""
            text.append(f"{indent}  note: onnxruntime's fused integer kernels differ from the exact graph beyond "
                        f"{OPTIMIZED_MAX_STEPS:g} step on {format_percent(OPTIMIZED_MAX_OFF_FRACTION)} of elements."
                        + cpu)
        if self.default is not None and not self.default.ok and (self.optimized is None or self.optimized.ok):
            text.append(f"{indent}  note: onnxruntime's default WeightBiasQuantization rounds float biases of QDQ "
                        "Conv/Gemm to int32 and moves these outputs; disable it with InferenceSession(..., "
                        "disabled_optimizers=['WeightBiasQuantization'])")
        return "\n".join(text)


def verify_deployment(reference: "Reference", model: ir.Model, *, tolerance: Tolerance | None = None
                      ) -> DeploymentVerification:
    """``verify_against`` three times when onnxruntime can run ``model`` (see DeploymentVerification);
    once, on the ``auto`` backend, when it cannot (QONNX ops left, no kernel)."""
    first = verify_against(reference, model, backend="auto", tolerance=tolerance)
    if first.backend_b != "onnxruntime":
        return DeploymentVerification(first)
    tol = tolerance or Tolerance()
    relaxed = Tolerance(tol.atol, tol.rtol, max(tol.max_steps, OPTIMIZED_MAX_STEPS),
                        max(tol.max_off_fraction, OPTIMIZED_MAX_OFF_FRACTION))
    optimized = verify_against(reference, model, backend="onnxruntime-optimized", tolerance=relaxed)
    default = verify_against(reference, model, backend="onnxruntime-default", tolerance=relaxed)
    return DeploymentVerification(first, optimized, default)


# -- formatting --------------------------------------------------------------------------------

def format_percent(fraction: float) -> str:
    """``fraction`` (0..1) as a percentage with two decimals, more when needed so that a
    non-zero fraction never prints as 0 and a fraction below one never prints as 100."""
    pct = 100.0 * fraction
    for digits in range(2, 12):
        text = f"{pct:.{digits}f}"
        shown = float(text)
        if (fraction > 0 and shown == 0.0) or (fraction < 1 and shown == 100.0):
            continue
        return f"{text} %"
    return "< 1e-9 %" if fraction < 0.5 else "> 99.999999999 %"


def format_count(count: int, total: int) -> str:
    """``count (x.xx %)`` of ``total``; a non-zero count never reads 0 %, a partial one never 100 %."""
    return f"{count} ({format_percent(count / total if total else 0.0)})"


def _num(x: float | None) -> str:
    if x is None:
        return "n/a"
    if x == 0:
        return "0"
    return f"{x:.3g}"


def verdict_text(out: OutputReport, tolerance: Tolerance) -> str:
    if out.verdict == "exact":
        return "ok: exact"
    if out.verdict == "tolerance":
        return "ok: atol/rtol"
    if out.verdict == "steps":
        return f"ok: <= {tolerance.max_steps:g} step(s)"
    return "MISMATCH"


TABLE_HEADER = ("output", "backend A", "backend B", "max abs", "max rel", "max steps", "elements differing", "verdict")


def format_table(report: VerifyReport, *, indent: str = "", title: str = "verify") -> str:
    """The one table every command prints: the rule, one row per output, notes and a legend."""
    runs = f", {report.runs} runs" if report.runs != 1 else ""
    lines = [f"{indent}{title}: A {report.backend_a} vs B {report.backend_b}{runs}; "
             f"agree when {report.tolerance.describe()}"]
    rows = [TABLE_HEADER]
    for out in report.outputs:
        rows.append((out.name, out.backend_a, out.backend_b, _num(out.max_abs), _num(out.max_rel), _num(out.max_steps),
                     format_count(out.differing, out.elements), verdict_text(out, report.tolerance)))
    widths = [max(len(row[k]) for row in rows) for k in range(len(TABLE_HEADER))]
    right = {3, 4, 5, 6}
    for row in rows:
        cells = [c.rjust(w) if k in right else c.ljust(w) for k, (c, w) in enumerate(zip(row, widths))]
        lines.append(indent + "  " + "  ".join(cells).rstrip())
    for note in report.notes:
        lines.append(f"{indent}  note: {note}")
    if any(out.max_steps is None and out.differing for out in report.outputs):
        lines.append(f"{indent}  max steps n/a: the output is not quantized (no step to count in)")
    return "\n".join(lines)


def summary(report: VerifyReport) -> str:
    """One line: "exact", the worst accepted difference, or the first mismatching output's figures."""
    bad = [o for o in report.outputs if not o.ok]
    if bad:
        o = bad[0]
        more = f" (and {len(bad) - 1} more output(s))" if len(bad) > 1 else ""
        return (f"output {o.name!r}: max abs {_num(o.max_abs)}, max rel {_num(o.max_rel)}, "
                f"max steps {_num(o.max_steps)}, "
                f"{format_count(o.differing, o.elements)} elements differing: MISMATCH{more}")
    if all(o.verdict == "exact" for o in report.outputs):
        return "exact"
    worst = max(report.outputs, key=lambda o: (o.verdict == "steps", o.max_abs))
    if worst.verdict == "steps":
        return f"max {_num(worst.max_steps)} steps on {format_count(worst.outside_tolerance, worst.elements)} elements"
    return f"within atol/rtol (max abs {_num(worst.max_abs)})"
