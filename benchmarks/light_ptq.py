"""Post-training quantization of the onnx wheel's light_*.onnx architectures, end to end.

Run by hand: ``python benchmarks/light_ptq.py [NAME ...]``. For each model, at 8 and 4 bits (weights per
channel, activations per tensor, max calibration on 2 seeded uniform [0, 1) images): quantizers inserted,
seconds to quantize and to convert to QCDQ, the largest difference between onnxruntime running the QCDQ
model and our executor running the QONNX one (on the logits, relative to the largest logit), then for the
4-bit model ``streamline``: MultiThresholds made, nodes ``streamline --report`` still lists as
non-integer, and the logits' change. Prints the markdown table of README's "Post-training quantization".
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import onnx

from qonnx_tools._ir import ir
from qonnx_tools.convert import convert
from qonnx_tools.executor import Executor
from qonnx_tools.model_io import load
from qonnx_tools.quantize import quantize
from qonnx_tools.runtime import run_onnxruntime
from qonnx_tools.streamline import streamline, streamline_report

LIGHT = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"


def _rel(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.abs(got - want).max() / max(float(np.abs(want).max()), 1e-30))


def measure(path: Path, bits: int, rng: np.random.Generator) -> dict:
    model = load(path)
    softmax = [n for n in model.graph if n.op_type == "Softmax"]
    if softmax:  # keep the logits as an output: uniform Softmax outputs would hide differences
        model.graph.outputs.append(softmax[-1].inputs[0])
    (data,) = [v.name for v in model.graph.inputs if v.name not in model.graph.initializers]
    logits = model.graph.outputs[-1].name
    start = time.perf_counter()
    result = quantize(model, [rng.random((1, 3, 224, 224), dtype=np.float32) for _ in range(2)], weights=bits,
                      acts=bits, per_channel=True)
    seconds_quantize = time.perf_counter() - start
    x = rng.random((1, 3, 224, 224), dtype=np.float32)
    ours = Executor(model).run({data: x})[logits]
    lowered = ir.serde.deserialize_model(ir.serde.serialize_model(model))
    start = time.perf_counter()
    convert(lowered, "qcdq")
    seconds_convert = time.perf_counter() - start
    row = {"model": path.stem.removeprefix("light_"), "bits": bits, "quantizers": len(result.tensors),
           "quantize_s": seconds_quantize, "qcdq_s": seconds_convert,
           "ort_vs_executor": _rel(run_onnxruntime(lowered, {data: x})[logits], ours)}
    del lowered
    if bits == 4:
        streamline(model)
        row["multithresholds"] = sum(n.op_type == "MultiThreshold" for n in model.graph)
        row["non_integer"] = len(streamline_report(model))
        row["streamline_change"] = _rel(Executor(model).run({data: x})[logits], ours)
        row["ops_left"] = dict(Counter(op for _, op, _ in streamline_report(model)).most_common(3))
    return row


def main() -> None:
    names = sys.argv[1:] or sorted(p.stem.removeprefix("light_") for p in LIGHT.glob("light_*.onnx"))
    rng = np.random.default_rng(0)
    print("| model | bits | quantizers | quantize s | to QCDQ s | onnxruntime vs executor | MultiThresholds | "
          "non-integer nodes left | streamline change |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name in names:
        for bits in (8, 4):
            r = measure(LIGHT / f"light_{name}.onnx", bits, rng)
            extra = (f"{r['multithresholds']} | {r['non_integer']} ({', '.join(f'{k} {v}' for k, v in r['ops_left'].items())})"
                     f" | {r['streamline_change']:.1e}") if bits == 4 else " | | "
            print(f"| {r['model']} | {bits} | {r['quantizers']} | {r['quantize_s']:.1f} | {r['qcdq_s']:.1f} | "
                  f"{r['ort_vs_executor']:.1e} | {extra} |", flush=True)


if __name__ == "__main__":
    main()
