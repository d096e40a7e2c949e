"""Time per inference: qonnx_tools' NumPy executor vs onnxruntime on the same QCDQ models.

Run by hand (not a test):  python benchmarks/bench_executor.py [--repeat N]
Needs ../shared/models. Prints a Markdown table to paste into benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np

from qonnx_tools.executor import Executor
from qonnx_tools.model_io import load
from qonnx_tools.passes import run_passes
from qonnx_tools.runtime import random_inputs
from qonnx_tools.testing import shared_dir

MODELS = {
    "CNV (bnn_cnv_2w2a)": "brevitas/bnn_cnv_2w2a/qcdq.onnx",
    "MobileNet-v1 4b": "brevitas/imagenet_mobilenet_v1_4b/qcdq.onnx",
    "TFC 2W2A": "brevitas/bnn_tfc_2w2a/qcdq.onnx",
}


def _with_batch(model, batch):
    feeds = random_inputs(model, seed=0, batch=batch)
    return {k: np.abs(v) for k, v in feeds.items()}  # image-like inputs in [0, 1)


def _time(fn, repeat: int) -> float:
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    root = shared_dir()
    if root is None:
        raise SystemExit("../shared/models is needed for this benchmark")
    import onnxruntime as ort

    from qonnx_tools._ir import ir

    print(f"machine: {platform.processor() or platform.machine()}, {platform.python_version()}, onnxruntime {ort.__version__}")
    print("| model | batch | numpy executor (ms) | onnxruntime, opt. off (ms) | onnxruntime, default opt. (ms) | ratio vs ORT default |")
    print("|---|---|---|---|---|---|")
    for label, rel in MODELS.items():
        for batch in (1, 64):
            # the exported files hard-code their batch size (Reshape constants): re-batch per run
            model = load(Path(root) / "models" / rel)
            run_passes(model, f"remove-static-inputs,change-batch-size{{batch={batch}}},infer-shapes")
            executor = Executor(model)
            proto = ir.to_proto(model).SerializeToString()
            sessions = {}
            for key, level in (("off", ort.GraphOptimizationLevel.ORT_DISABLE_ALL), ("on", ort.GraphOptimizationLevel.ORT_ENABLE_ALL)):
                options = ort.SessionOptions()
                options.graph_optimization_level = level
                sessions[key] = ort.InferenceSession(proto, options, providers=["CPUExecutionProvider"])
            feeds = _with_batch(model, batch)
            ours = _time(lambda: executor.run(feeds), args.repeat)
            off = _time(lambda: sessions["off"].run(None, feeds), args.repeat)
            on = _time(lambda: sessions["on"].run(None, feeds), args.repeat)
            print(f"| {label} | {batch} | {ours * 1e3:.1f} | {off * 1e3:.1f} | {on * 1e3:.1f} | {ours / on:.2f}x |")


if __name__ == "__main__":
    main()
