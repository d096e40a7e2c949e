"""Deployment latency in onnxruntime (CPU) of four forms of each Brevitas model (issue 17).

Run by hand (not a test):

    python benchmarks/bench_deploy.py [--models a,b] [--batches 1,64] [--repeat N] [--json OUT.json]

Needs ../shared/models (brevitas/<model>/qonnx.onnx and qcdq.onnx). Prints Markdown
tables to paste into benchmarks/RESULTS.md.

Variants, all built from the corpus files:

- ``float``: ``qonnx.onnx`` with every QONNX quantizer removed. Each node of a QONNX
  domain whose op is Quant, IntQuant, BipolarQuant, Trunc or FloatQuant is deleted
  and every use of its output (a graph output included) is redirected to its first
  input, the float tensor it quantized (``qonnx_tools.passes._rewrite.bypass``): weights
  keep their float (unquantized) values, activations pass through unrounded and
  unclipped, Trunc's input goes straight on. Then our ``cleanup`` pipeline
  (``run_passes(model, "cleanup")``: constant folding, weight Transposes folded,
  no-op arithmetic and dead code removed, shapes inferred).
- ``qcdq``: ours, ``qonnx_tools.convert.convert(model, to="qcdq")`` on ``qonnx.onnx``.
- ``brevitas``: Brevitas' own ``qcdq.onnx``, as exported (initializers listed as
  graph inputs kept: that is the file a deployment engineer gets).
- ``qop``: ours, ``convert(model, to="qop")`` with default options; when it refuses
  (ConversionError) the refusal is recorded in one line (the unconverted nodes
  grouped by op and reason) instead of a time.

Every variant, Brevitas' included, is re-batched with our passes
``change-batch-size{batch=B},infer-shapes`` (the files declare batch 2 or 4). A
variant counts as not re-batchable when the pass declines a Reshape or the result
does not run in onnxruntime with outputs of batch B; it is then left out at that batch
and the reason printed (‡ notes). All six models re-batch to 1 and 64 (2026-12-07).

onnxruntime: CPUExecutionProvider, default SessionOptions (graph optimisation
ORT_ENABLE_ALL, default threading) except the logging level (errors only, to hide
the "initializer appears in graph inputs" warnings) and, per column set,
``intra_op_num_threads`` = 1 or left at its default (0: onnxruntime's choice).
Second option set ("no-WBQ"): the same with ``disabled_optimizers=["WeightBiasQuantization"]``;
it is timed only for variants whose optimised graph differs from the default one
(identical graphs are reported as such).

Optimised graphs: a separate session per variant, batch and option set with
``SessionOptions.optimized_model_filepath`` set; its node op types are counted,
integer kernels (QLinear*, QGemm, ConvInteger, MatMulInteger, MatMulIntegerToFloat,
DynamicQuantizeMatMul, ...; tagged [u8]/[s8] by the type of their first input's
zero-point, i.e. of the activation) and float compute kernels (Conv, FusedConv, MatMul,
FusedMatMul, Gemm, FusedGemm, ConvTranspose, NCHWc Conv) separately.

Timing: one input, uniform in [0, 1) (seed 0), the same array for every variant.
Per (model, batch, threads, option set): every variant gets ``--warmup`` runs, then
rounds of one run per variant (round-robin, starting variant rotated each round, so
that load on the shared machine hits all variants alike) until ``--repeat`` rounds
or, after at least 3 rounds, ``--budget`` seconds for the case. Reported: the
**best** of those runs (ms); ratios are taken within the same case, of the best
times and (in brackets) of the medians. Medians and run counts are in the JSON, with
each variant's largest output difference from Brevitas' QCDQ on the timing input.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import platform
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx

from qonnx_tools._ir import ir
from qonnx_tools.convert import convert
from qonnx_tools.domains import is_qonnx_domain
from qonnx_tools.errors import ConversionError
from qonnx_tools.model_io import load
from qonnx_tools.passes import parse_pipeline, run_passes
from qonnx_tools.passes._rewrite import bypass
from qonnx_tools.testing import shared_dir

MODELS = [
    "bnn_cnv_2w2a",
    "imagenet_mobilenet_v1_4b",
    "seed_qop_conv",
    "qop_cnn_s8",
    "mlp_bitwidths",
    "residual_shared_quant",
]
VARIANTS = {"float": "float", "qcdq": "our QCDQ", "brevitas": "Brevitas QCDQ", "qop": "our QOp"}
QUANTIZERS = {"Quant", "IntQuant", "BipolarQuant", "Trunc", "FloatQuant"}
INT_KERNELS = {
    "QGemm", "ConvInteger", "MatMulInteger", "MatMulIntegerToFloat", "DynamicQuantizeMatMul",
    "QAttention", "DynamicQuantizeLSTM", "MatMulNBits",
}
FLOAT_KERNELS = {"Conv", "FusedConv", "ConvTranspose", "MatMul", "FusedMatMul", "Gemm", "FusedGemm"}
_ELEM = {onnx.TensorProto.UINT8: "u8", onnx.TensorProto.INT8: "s8"}
OPTION_SETS = {"default": [], "no-WBQ": ["WeightBiasQuantization"]}
THREADS = {"1": 1, "default": 0}


# -- variants ------------------------------------------------------------------------------------
def strip_quantizers(model: ir.Model) -> int:
    """Remove every QONNX quantizer: uses of its output go to its first input. Returns the count."""
    removed = 0
    for node in list(ir.traversal.RecursiveGraphIterator(model.graph)):
        if node.op_type in QUANTIZERS and is_qonnx_domain(node.domain):
            if not bypass(node, node.inputs[0], node.outputs[0]):
                raise RuntimeError(f"cannot bypass {node.name} ({node.op_type})")
            removed += 1
    return removed


def _short_reason(reason: str) -> str:
    reason = re.sub(r"\s*\([^)]*\)", "", reason)  # drop the parenthesised explanations and hints
    return reason.replace("the output feeds", "output feeds").replace("the input comes from", "input from")


def refusal_line(path: Path) -> str:
    """One line: the nodes ``convert(to="qop")`` leaves unconverted, grouped by op and reason."""
    model = load(path)
    result = convert(model, to="qop", allow_partial=True)
    groups = collections.Counter((u.op, _short_reason(u.reason)) for u in result.unconverted)
    parts = [f"{n} {op}: {reason}" for (op, reason), n in groups.most_common()]
    return f"refused, {len(result.unconverted)} nodes: " + "; ".join(parts)


def build_variants(folder: Path) -> tuple[dict[str, bytes], dict[str, str], dict[str, float]]:
    """Serialized variants at the files' own batch, refusal lines, and build times (s)."""
    protos, refused, seconds = {}, {}, {}
    for key in VARIANTS:
        start = time.perf_counter()
        try:
            if key == "brevitas":
                model = load(folder / "qcdq.onnx")
            else:
                model = load(folder / "qonnx.onnx")
                if key == "float":
                    strip_quantizers(model)
                    run_passes(model, "cleanup")
                else:
                    convert(model, to=key)
        except ConversionError:
            refused[key] = refusal_line(folder / "qonnx.onnx")
            continue
        seconds[key] = time.perf_counter() - start
        protos[key] = ir.to_proto(model).SerializeToString()
    return protos, refused, seconds


def rebatch(proto: bytes, batch: int) -> tuple[bytes | None, str | None]:
    """The variant at batch ``batch``, or None and why not."""
    model = ir.from_proto(onnx.load_from_string(proto))
    pipeline = parse_pipeline(f"change-batch-size{{batch={batch}}},infer-shapes")
    try:
        pipeline(model)
    except Exception as exc:  # noqa: BLE001 - reported, not hidden
        return None, f"change-batch-size/infer-shapes failed: {str(exc).splitlines()[0]}"
    declined = pipeline.passes[0].declined
    if declined:
        return None, "change-batch-size declined: " + "; ".join(declined)
    return ir.to_proto(model).SerializeToString(), None


# -- onnxruntime ---------------------------------------------------------------------------------
def session(proto: bytes, threads: int, disabled: list[str], optimized_path: str | None = None):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    if threads:
        options.intra_op_num_threads = threads
    if optimized_path:
        options.optimized_model_filepath = optimized_path
    kwargs = {"disabled_optimizers": disabled} if disabled else {}
    return ort.InferenceSession(proto, options, providers=["CPUExecutionProvider"], **kwargs)


def optimized_ops(proto: bytes, disabled: list[str], tmp: str) -> list[str]:
    """Op types (domain-qualified when not ai.onnx) of onnxruntime's optimised graph, in order; integer
    kernels get the element type of their first input's zero-point, e.g. ``com.microsoft:QLinearConv[u8]``."""
    path = os.path.join(tmp, "optimized.onnx")
    session(proto, 1, disabled, path)
    graph = onnx.load(path, load_external_data=False).graph
    zp_types = {i.name: i.data_type for i in graph.initializer}
    ops = []
    for n in graph.node:
        op = f"{n.domain}:{n.op_type}" if n.domain not in ("", "ai.onnx") else n.op_type
        if n.op_type.startswith("QLinear") or n.op_type in INT_KERNELS:
            index = 4 if n.op_type == "MatMulIntegerToFloat" else 2
            zp = n.input[index] if len(n.input) > index else ""
            if zp_types.get(zp) in _ELEM:
                op += f"[{_ELEM[zp_types[zp]]}]"
        ops.append(op)
    return ops


def kernel_counts(ops: list[str]) -> tuple[dict[str, int], dict[str, int]]:
    integer, floating = collections.Counter(), collections.Counter()
    for op in ops:
        domain, _, name = op.rpartition(":")
        if name.startswith("QLinear") or name.split("[")[0] in INT_KERNELS:
            integer[name] += 1
        elif name in FLOAT_KERNELS:
            floating[name + (" (NCHWc)" if domain.endswith("nchwc") else "")] += 1
    return dict(integer), dict(floating)


def feeds_for(sess, x: np.ndarray) -> dict[str, np.ndarray]:
    (inp,) = sess.get_inputs()
    return {inp.name: x}


def run_case(protos: dict[str, bytes], x: np.ndarray, threads: int, disabled: list[str], args) -> dict[str, dict]:
    """Round-robin timing of the given variants; per variant best/median ms and the run count."""
    sessions = {key: session(proto, threads, disabled) for key, proto in protos.items()}
    feeds = {key: feeds_for(s, x) for key, s in sessions.items()}
    for key, s in sessions.items():
        for _ in range(args.warmup):
            s.run(None, feeds[key])
    times: dict[str, list[float]] = {key: [] for key in sessions}
    keys = list(sessions)
    start = time.perf_counter()
    for round_ in range(args.repeat):
        if round_ >= 3 and time.perf_counter() - start > args.budget:
            break
        for key in keys[round_ % len(keys):] + keys[: round_ % len(keys)]:
            t0 = time.perf_counter()
            sessions[key].run(None, feeds[key])
            times[key].append(time.perf_counter() - t0)
    return {
        key: {"best_ms": min(t) * 1e3, "median_ms": statistics.median(t) * 1e3, "runs": len(t)}
        for key, t in times.items()
    }


# -- driver --------------------------------------------------------------------------------------
def bench_model(name: str, folder: Path, batches: list[int], args, tmp: str) -> dict:
    protos, refused, build_s = build_variants(folder)
    record: dict = {"model": name, "refused": refused, "build_s": build_s, "batches": {}, "not_rebatchable": {}}
    for batch in batches:
        at_batch: dict[str, bytes] = {}
        for key, proto in protos.items():
            rebatched, why = rebatch(proto, batch)
            if rebatched is not None:
                try:  # the re-batched file must run and give batch-B outputs
                    s = session(rebatched, 1, [])
                    x0 = np.zeros([batch, *s.get_inputs()[0].shape[1:]], np.float32)
                    outs = s.run(None, feeds_for(s, x0))
                    if any(o.shape[:1] != (batch,) for o in outs):
                        why = f"outputs have shapes {[o.shape for o in outs]} at batch {batch}"
                except Exception as exc:  # noqa: BLE001 - reported
                    why = f"onnxruntime: {str(exc).splitlines()[0][:200]}"
            if why is None:
                at_batch[key] = rebatched
            else:
                record["not_rebatchable"].setdefault(key, {})[str(batch)] = why
        if not at_batch:
            continue
        s = session(next(iter(at_batch.values())), 1, [])
        shape = [batch, *s.get_inputs()[0].shape[1:]]
        x = np.random.default_rng(0).random(shape, dtype=np.float32)
        entry: dict = {"input_shape": shape, "ops": {}, "kernels": {}, "times": {}, "max_abs_diff_vs_brevitas": {}}
        graphs: dict[str, dict[str, list[str]]] = {}
        for opt, disabled in OPTION_SETS.items():
            graphs[opt] = {key: optimized_ops(p, disabled, tmp) for key, p in at_batch.items()}
            entry["ops"][opt] = {key: dict(collections.Counter(ops)) for key, ops in graphs[opt].items()}
            entry["kernels"][opt] = {key: kernel_counts(ops) for key, ops in graphs[opt].items()}
        if "brevitas" in at_batch:  # sanity: do the variants compute the same thing?
            ref = session(at_batch["brevitas"], 1, []).run(None, {s.get_inputs()[0].name: x})[0]
            for key, p in at_batch.items():
                s = session(p, 1, [])
                out = s.run(None, feeds_for(s, x))[0]
                entry["max_abs_diff_vs_brevitas"][key] = float(np.max(np.abs(out - ref)))
        for tname, threads in THREADS.items():
            for opt, disabled in OPTION_SETS.items():
                chosen = {
                    key: p for key, p in at_batch.items()
                    if opt == "default" or graphs[opt][key] != graphs["default"][key]
                }
                if chosen:
                    entry["times"][f"{tname}/{opt}"] = run_case(chosen, x, threads, disabled, args)
                print(f"  {name} batch {batch} threads {tname} {opt}: done", file=sys.stderr, flush=True)
        record["batches"][str(batch)] = entry
    return record


def _fmt_ms(value: float) -> str:
    return f"{value:.3f}" if value < 1 else f"{value:.2f}" if value < 100 else f"{value:.1f}"


def _ratio(times: dict, a: str, b: str) -> str:
    """Ratio of best times, and of median times in brackets."""
    if a in times and b in times:
        return (f"{times[a]['best_ms'] / times[b]['best_ms']:.2f} "
                f"({times[a]['median_ms'] / times[b]['median_ms']:.2f})")
    return "–"


def _kernels(integer: dict, floating: dict) -> str:
    ints = " + ".join(f"{n} {op}" for op, n in sorted(integer.items())) or "0"
    floats = " + ".join(f"{n} {op}" for op, n in sorted(floating.items())) or "0"
    return f"int: {ints}; float: {floats}"


def markdown(records: list[dict], batches: list[int]) -> str:
    lines = []
    for batch in batches:
        for tname in THREADS:
            lines += [
                f"**batch {batch}, {'1 intra-op thread' if tname == '1' else 'default threads'}** "
                "(best of N, ms; ratios of best times, of medians in brackets)",
                "",
                "| model | float | our QCDQ | Brevitas QCDQ | our QOp | our QCDQ / Brevitas | our QOp / our QCDQ "
                "| our QCDQ / float | N |",
                "|---|---|---|---|---|---|---|---|---|",
            ]
            for rec in records:
                entry = rec["batches"].get(str(batch))
                if entry is None:
                    why = "; ".join(f"{VARIANTS[k]}: {v.get(str(batch), '')}" for k, v in rec["not_rebatchable"].items())
                    lines.append(f"| {rec['model']} | not re-batchable ({why}) | | | | | | | |")
                    continue
                times = entry["times"].get(f"{tname}/default", {})
                cells = []
                for key in VARIANTS:
                    if key in times:
                        cells.append(_fmt_ms(times[key]["best_ms"]))
                    elif key in rec["refused"]:
                        cells.append("refused†")
                    else:
                        cells.append("n/a‡")
                runs = sorted({t["runs"] for t in times.values()})
                lines.append(
                    f"| {rec['model']} | " + " | ".join(cells)
                    + f" | {_ratio(times, 'qcdq', 'brevitas')} | {_ratio(times, 'qop', 'qcdq')}"
                    f" | {_ratio(times, 'qcdq', 'float')} | {'/'.join(map(str, runs))} |"
                )
            lines.append("")
    # second option set
    lines += ["**no-WBQ** (`disabled_optimizers=[\"WeightBiasQuantization\"]`): variants whose optimised graph "
              "differs from the default one (best of N, ms; default-options time of the same run in brackets)", ""]
    any_diff = False
    for rec in records:
        for batch, entry in rec["batches"].items():
            for tname in THREADS:
                nowbq = entry["times"].get(f"{tname}/no-WBQ", {})
                base = entry["times"].get(f"{tname}/default", {})
                for key, t in nowbq.items():
                    any_diff = True
                    lines.append(f"- {rec['model']} batch {batch} threads {tname}, {VARIANTS[key]}: "
                                 f"{_fmt_ms(t['best_ms'])} ({_fmt_ms(base[key]['best_ms'])})")
    if not any_diff:
        lines.append("- none: with WeightBiasQuantization disabled, onnxruntime's optimised graph is identical to the "
                     "default one for every variant, model and batch.")
    lines.append("")
    # kernels
    lines += [
        "**Kernels after onnxruntime's optimiser** (default options; integer kernels; float compute kernels; "
        "a row for a later batch only where it differs from the previous one)",
        "",
        "| model | batch | float | our QCDQ | Brevitas QCDQ | our QOp |",
        "|---|---|---|---|---|---|",
    ]
    for rec in records:
        shown = None
        for batch, entry in rec["batches"].items():
            row = [
                _kernels(*entry["kernels"]["default"][key]) if key in entry["kernels"]["default"]
                else ("refused†" if key in rec["refused"] else "n/a‡")
                for key in VARIANTS
            ]
            if row == shown:
                continue  # same as the previous batch
            shown = row
            lines.append(f"| {rec['model']} | {batch} | " + " | ".join(row) + " |")
    lines.append("")
    for rec in records:
        for key, why in rec["refused"].items():
            lines.append(f"† {rec['model']}, {VARIANTS[key]}: {why}")
        for key, per_batch in rec["not_rebatchable"].items():
            for batch, why in per_batch.items():
                lines.append(f"‡ {rec['model']}, {VARIANTS[key]}, batch {batch}: {why}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated subset of: " + ", ".join(MODELS))
    parser.add_argument("--batches", default="1,64", help="comma-separated batch sizes (default 1,64)")
    parser.add_argument("--repeat", type=int, default=20, help="timed rounds per case, at most (default 20)")
    parser.add_argument("--budget", type=float, default=45.0,
                        help="seconds per case after which rounds stop, once 3 are done (default 45)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed runs per variant and case (default 2)")
    parser.add_argument("--json", type=Path, help="write the machine-readable results here")
    args = parser.parse_args()
    root = shared_dir()
    if root is None:
        raise SystemExit("../shared/models is needed for this benchmark")
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        raise SystemExit(f"unknown model(s): {', '.join(unknown)}; choose from {', '.join(MODELS)}")
    batches = [int(b) for b in args.batches.split(",")]
    import onnxruntime as ort

    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor())
    meta = {
        "cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "numpy": np.__version__,
        "onnxruntime": ort.__version__, "onnx": onnx.__version__, "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "loadavg_start": os.getloadavg(), "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
    }
    try:  # the code measured: commit, and whether qonnx_tools had uncommitted changes
        import subprocess

        here = Path(__file__).resolve().parents[1]
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=here, capture_output=True, text=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "qonnx_tools"], cwd=here, capture_output=True, text=True)
        meta["git"] = head.stdout.strip() + (f" + {len(dirty.stdout.splitlines())} modified file(s) in qonnx_tools"
                                             if dirty.stdout.strip() else "")
    except OSError:
        meta["git"] = "unknown"
    start = time.perf_counter()
    records = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in models:
            print(f"{name} ...", file=sys.stderr, flush=True)
            records.append(bench_model(name, root / "models" / "brevitas" / name, batches, args, tmp))
    meta["loadavg_end"] = os.getloadavg()
    meta["wall_s"] = time.perf_counter() - start
    print(f"machine: {cpu}, {meta['cores']} cores; Python {meta['python']}, numpy {meta['numpy']}, "
          f"onnxruntime {meta['onnxruntime']}; {meta['date']}; load average {meta['loadavg_start'][0]:.2f} at start, "
          f"{meta['loadavg_end'][0]:.2f} at end; {meta['wall_s']:.0f} s; code {meta['git']}\n")
    print(markdown(records, batches))
    if args.json:
        args.json.write_text(json.dumps({"meta": meta, "results": records}, indent=1))


if __name__ == "__main__":
    main()
