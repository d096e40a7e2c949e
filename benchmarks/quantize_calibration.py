"""Post-training quantization speed: our ``quantize`` against onnxruntime's ``quantize_static``.

Run by hand (not a test):

    python benchmarks/quantize_calibration.py [--cases digits,digits-big,resnet50,squeezenet] [--repeat 3]
        [--big-samples 4096] [--light-samples 16] [--blas-threads N] [--no-ort-pre] [--json OUT.json]
    python benchmarks/quantize_calibration.py --profile CASE [--top 25]    # cProfile of ours, in process

Same float model, batches and settings for both: 8-bit weights and activations, per tensor, max
(MinMax), symmetric. Ours: ``quantize(load(path), batches, weights=8, acts=8, per_channel=False,
method="max")`` + ``model_io.save``; onnxruntime: ``quantize_static(path, out, reader, QDQ, QInt8/QInt8,
MinMax, Activation/WeightSymmetric)``, which writes the file. Both write to a temporary folder. Timed:
the whole call (calibration, insertion, save). Not timed: our ``load`` (onnxruntime reads the file
inside its call, a few ms here), reading the data (batches are sliced in memory first), imports.

Every run is a fresh subprocess; contenders alternate (first one rotated each round) so that load on
the shared machine hits all alike. Memory: the worker resets its peak RSS (/proc/self/clear_refs)
before the call; "peak" is VmHWM after it (imports and model included), "growth" VmHWM minus the RSS
at the start. "quantized tensors": Quant/BipolarQuant nodes (ours), DequantizeLinear nodes (QDQ).
``ort-pre``: onnxruntime on ``quant_pre_process`` output (its recommended first step; its optimiser
folds constants and BatchNormalization, so the graph differs), that step timed once apart.

Cases: ``digits`` = models/digits (256 rows, batch 32); ``digits-big``: those rows repeated with
seeded noise to --big-samples, batch 256; ``resnet50``/``squeezenet``: the onnx wheel's light_*.onnx
(IR 3, opset 9, weights from ConstantOfShape, initializers listed as inputs), --light-samples seeded
uniform [0, 1) images, batch 1. Threads: defaults; --blas-threads N adds a contender "ours-blasN", ours
with OPENBLAS/OMP/MKL_NUM_THREADS=N (quantize_static cannot set its calibration session's threads).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CONTENDERS = ("ours", "ort", "ort-pre")


def make_case(case: str, args, tmp: Path) -> tuple[Path, Path, int]:
    """(model path, .npz of calibration samples keyed by input name, batch size)."""
    import onnx

    if case.startswith("digits"):
        model, batch = ROOT / "models/digits/digits_mlp.onnx", 32
        x = np.load(ROOT / "models/digits/digits_calib.npz")["x"]
        if case == "digits-big":
            x = np.resize(x, (args.big_samples, x.shape[1]))
            x, batch = np.clip(x + np.random.default_rng(0).normal(0, 0.05, x.shape), 0, 1).astype(np.float32), 256
        arrays = {"x": x}
    elif case in ("resnet50", "squeezenet"):
        model = Path(onnx.__file__).parent / f"backend/test/data/light/light_{case}.onnx"
        graph = onnx.load(model).graph
        name = next(v.name for v in graph.input if v.name not in {t.name for t in graph.initializer})
        arrays = {name: np.random.default_rng(0).random((args.light_samples, 3, 224, 224), dtype=np.float32)}
        batch = 1
    else:
        raise SystemExit(f"unknown case {case!r}")
    np.savez(data := tmp / f"{case}.npz", **arrays)
    return model, data, batch


def batches(data: Path, batch: int) -> list[dict[str, np.ndarray]]:
    with np.load(data) as f:
        arrays = {k: f[k] for k in f.files}
    n = len(next(iter(arrays.values())))
    return [{k: np.ascontiguousarray(a[i:i + batch]) for k, a in arrays.items()} for i in range(0, n, batch)]


def run_ours(model_path: Path, feeds, out: Path):
    import qonnx_tools.executor  # noqa: F401  imported inside quantize(); with PYTHONDONTWRITEBYTECODE
    import qonnx_tools.passes.fold_constants  # noqa: F401  their compile time would count
    import qonnx_tools.passes.remove_static_inputs  # noqa: F401
    import qonnx_tools.shape_inference  # noqa: F401
    from qonnx_tools.model_io import load, save
    from qonnx_tools.quantize import quantize

    model = load(model_path)

    def call():
        quantize(model, feeds, weights=8, acts=8, per_channel=False, method="max")
        save(model, out)
    return call


def run_ort(model_path: Path, feeds, out: Path):
    import logging

    from qonnx_tools.testing import ort_quantize_static_int8

    logging.getLogger().setLevel(logging.ERROR)  # one warning per non-initializer bias on the light models

    def call():
        ort_quantize_static_int8(model_path, out, feeds)
    return call


def _status_kib(field: str) -> int:
    line = next(ln for ln in Path("/proc/self/status").read_text().splitlines() if ln.startswith(field + ":"))
    return int(line.split()[1])


def worker(args) -> None:
    """One timed run in this process; prints a JSON line."""
    import onnx

    feeds = batches(Path(args.data), args.batch)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "quantized.onnx"
        call = (run_ours if args.worker == "ours" else run_ort)(Path(args.model), feeds, out)
        start_kib = _status_kib("VmRSS")
        Path("/proc/self/clear_refs").write_text("5")  # reset the peak RSS (VmHWM) to the current RSS
        start = time.perf_counter()
        call()
        seconds = time.perf_counter() - start
        peak_kib = _status_kib("VmHWM")
        ops = [n.op_type for n in onnx.load(out).graph.node]
    quantized = ops.count("Quant") + ops.count("BipolarQuant") + ops.count("DequantizeLinear")
    print(json.dumps({"seconds": seconds, "peak_mib": peak_kib / 1024, "grow_mib": (peak_kib - start_kib) / 1024,
                      "quantizers": quantized}))


def spawn(contender: str, model: Path, data: Path, batch: int) -> dict:
    env = dict(os.environ)
    if contender.startswith("ours-blas"):
        env.update(dict.fromkeys(("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"), contender[9:]))
    cmd = [sys.executable, __file__, "--worker", "ours" if contender.startswith("ours") else "ort",
           "--model", str(model), "--data", str(data), "--batch", str(batch)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode:
        lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
        return {"error": lines[-1] if lines else f"exit {proc.returncode}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def preprocess(model: Path, tmp: Path) -> tuple[Path | None, float | None, str | None]:
    from onnxruntime.quantization.shape_inference import quant_pre_process

    out, start = tmp / f"{model.stem}_pre.onnx", time.perf_counter()
    try:
        quant_pre_process(str(model), str(out))
    except Exception as exc:  # recorded, not worked around
        return None, None, f"{type(exc).__name__}: {exc}"
    return out, time.perf_counter() - start, None


def summary(runs: list[dict]) -> dict:
    if failed := [r for r in runs if "error" in r]:
        return {"error": failed[0]["error"]}
    s = [r["seconds"] for r in runs]
    return {"min": min(s), "median": statistics.median(s), "peak_mib": max(r["peak_mib"] for r in runs),
            "grow_mib": max(r["grow_mib"] for r in runs), "quantizers": runs[0]["quantizers"], "runs": s}


def machine() -> str:
    import onnx
    import onnxruntime

    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), platform.processor())
    git = ["git", "-C", str(ROOT)]
    head = subprocess.run(git + ["rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(git + ["status", "--porcelain", "--", "qonnx_tools"], capture_output=True, text=True)
    return (f"{cpu}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}; Python {platform.python_version()}, "
            f"numpy {np.__version__}, onnx {onnx.__version__}, onnxruntime {onnxruntime.__version__}; code {head} "
            f"+ {len(dirty.stdout.splitlines())} uncommitted file(s) in qonnx_tools")


def profile(args) -> None:
    import cProfile
    import pstats

    with tempfile.TemporaryDirectory() as tmp:
        model, data, batch = make_case(args.profile, args, Path(tmp))
        call = run_ours(model, batches(data, batch), Path(tmp) / "q.onnx")
        prof = cProfile.Profile()
        prof.runcall(call)
    for key in ("tottime", "cumulative"):
        pstats.Stats(prof).strip_dirs().sort_stats(key).print_stats(args.top)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", default="digits,digits-big,resnet50,squeezenet")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--big-samples", type=int, default=4096)
    parser.add_argument("--light-samples", type=int, default=16)
    parser.add_argument("--blas-threads", type=int, help="also time ours with this many BLAS threads")
    parser.add_argument("--no-ort-pre", action="store_true", help="skip onnxruntime on quant_pre_process output")
    parser.add_argument("--json", metavar="OUT", help="also write every run as JSON")
    parser.add_argument("--profile", metavar="CASE", help="cProfile our quantize on CASE instead (in process)")
    parser.add_argument("--top", type=int, default=25)
    for flag in ("--worker", "--model", "--data"):
        parser.add_argument(flag, help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    if args.profile:
        return profile(args)
    print(f"machine: {machine()}")
    contenders = [c for c in CONTENDERS if not (args.no_ort_pre and c == "ort-pre")]
    if args.blas_threads:
        contenders.insert(1, f"ours-blas{args.blas_threads}")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for case in args.cases.split(","):
            model, data, batch = make_case(case, args, Path(tmp))
            paths = dict.fromkeys(contenders, model)
            entry = results[case] = {"batch": batch}
            if "ort-pre" in contenders:
                paths["ort-pre"], entry["pre_seconds"], entry["pre_error"] = preprocess(model, Path(tmp))
            runs = {c: [] for c in contenders}
            for r in range(args.repeat):
                for c in contenders[r % len(contenders):] + contenders[:r % len(contenders)]:
                    runs[c].append(spawn(c, paths[c], data, batch) if paths[c]
                                   else {"error": entry["pre_error"]})  # a pre-processing error: not re-run
                    print(f"  {case} round {r + 1} {c}: {runs[c][-1]}", file=sys.stderr)
            entry.update({c: summary(runs[c]) for c in contenders})
    print("\n| case | batch | contender | quantized tensors | min (s) | median (s) | this / ort, min (median) "
          "| peak RSS in call (MiB) | growth in call (MiB) |\n|---|---|---|---|---|---|---|---|---|")
    for case, entry in results.items():
        ort = entry["ort"]
        for c in contenders:
            if "error" in (s := entry[c]):
                error = s["error"] if len(s["error"]) < 160 else s["error"][:150] + " …"
                print(f"| {case} | {entry['batch']} | {c} | – | failed: {error} | | | | |")
                continue
            ratio = "" if c == "ort" or "error" in ort else \
                f"{s['min'] / ort['min']:.2f} ({s['median'] / ort['median']:.2f})"
            print(f"| {case} | {entry['batch']} | {c} | {s['quantizers']} | {s['min']:.3f} | {s['median']:.3f} "
                  f"| {ratio} | {s['peak_mib']:.0f} | {s['grow_mib']:.0f} |")
        if entry.get("pre_seconds") is not None:
            print(f"| {case} | | quant_pre_process (once, not in ort-pre) | | {entry['pre_seconds']:.3f} | | | | |")
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": machine(), "args": vars(args), "results": results},
                                              indent=2))


if __name__ == "__main__":
    main()
