"""Scaling of load / infer-shapes / fold-constants / convert --to qcdq / cleanup / streamline / save on synthetic QONNX graphs.

Run by hand (not a test):
    python benchmarks/bench_passes.py [--sizes 100 1000 10000] [--big]

Each graph has N blocks [weight IntQuant -> MatMul -> bias Add -> activation IntQuant -> Relu].
``--big`` adds one model with a 1 GiB external-data initializer. Prints a Markdown
table (seconds) and the t(10000)/t(1000) ratios for benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from qonnx_tools.convert import convert
from qonnx_tools.domains import QONNX
from qonnx_tools.model_io import load, save
from qonnx_tools.passes import registered_passes, run_passes
from qonnx_tools.passes.pipeline import FixpointNotReached
from qonnx_tools.streamline import Streamline

WIDTH = 16


def build_chain(n_blocks: int, seed: int = 0) -> onnx.ModelProto:
    """A QONNX MLP of ``n_blocks`` quantized MatMul blocks (weights differ per block)."""
    rng = np.random.default_rng(seed)
    nodes, inits = [], [
        numpy_helper.from_array(np.array(0.05, np.float32), "s"),
        numpy_helper.from_array(np.array(0.0, np.float32), "z"),
        numpy_helper.from_array(np.array(4.0, np.float32), "b4"),
        numpy_helper.from_array(np.array(8.0, np.float32), "b8"),
    ]
    x = "x"
    for i in range(n_blocks):
        inits.append(numpy_helper.from_array(rng.standard_normal((WIDTH, WIDTH)).astype(np.float32) * 0.2, f"W{i}"))
        inits.append(numpy_helper.from_array(rng.standard_normal(WIDTH).astype(np.float32) * 0.1, f"B{i}"))
        nodes += [
            helper.make_node("IntQuant", [f"W{i}", "s", "z", "b4"], [f"Wq{i}"], domain=QONNX, narrow=1),
            helper.make_node("MatMul", [x, f"Wq{i}"], [f"m{i}"]),
            helper.make_node("Add", [f"m{i}", f"B{i}"], [f"a{i}"]),
            helper.make_node("IntQuant", [f"a{i}", "s", "z", "b8"], [f"q{i}"], domain=QONNX),
            helper.make_node("Relu", [f"q{i}"], [f"r{i}"]),
        ]
        x = f"r{i}"
    graph = helper.make_graph(
        nodes,
        f"chain{n_blocks}",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", WIDTH])],
        [helper.make_tensor_value_info(x, TensorProto.FLOAT, None)],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid(QONNX, 1)])


def build_big(path: Path) -> None:
    """A model whose single weight is 1 GiB, saved with external data."""
    side = 16384
    weight = np.ones((side, side), np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["y"])],
        "big",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, side])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(weight, "W")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.save(model, str(path), save_as_external_data=True, location=path.name + ".data")


def _timed(fn):
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def measure(path: Path, out: Path) -> dict[str, float]:
    times = {}
    _, times["load"] = _timed(lambda: load(path))
    model = load(path)
    _, times["infer-shapes"] = _timed(lambda: run_passes(model, "infer-shapes"))
    model = load(path)
    _, times["fold-constants"] = _timed(lambda: run_passes(model, "fold-constants"))
    model = load(path)
    _, times["convert-qcdq"] = _timed(lambda: convert(model, to="qcdq", allow_partial=True))
    model = load(path)
    _, times["cleanup"] = _timed(lambda: run_passes(model, "cleanup"))
    _, times["save"] = _timed(lambda: save(model, out))
    model = load(path)
    with warnings.catch_warnings():
        warnings.simplefilter("error", FixpointNotReached)  # a bound hit would make the time meaningless
        _, times["streamline"] = _timed(lambda: Streamline()(model))
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 10000])
    parser.add_argument("--big", action="store_true", help="also time a model with a 1 GiB external initializer")
    args = parser.parse_args()
    print(f"machine: {platform.machine()} {platform.processor()}, Python {platform.python_version()}")
    registered_passes()  # import every pass module before timing anything
    steps = ["load", "infer-shapes", "fold-constants", "convert-qcdq", "cleanup", "streamline", "save"]
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for n in args.sizes:
            path = tmp / f"chain{n}.onnx"
            onnx.save(build_chain(n), str(path))
            results[n] = measure(path, tmp / f"chain{n}.out.onnx")
        print("| N blocks | nodes | " + " | ".join(steps) + " |")
        print("|---|---|" + "---|" * len(steps))
        for n, t in results.items():
            print(f"| {n} | {5 * n} | " + " | ".join(f"{t[s]:.3f}" for s in steps) + " |")
        if 1000 in results and 10000 in results:
            print("ratios t(10000)/t(1000): " + ", ".join(f"{s} {results[10000][s] / results[1000][s]:.1f}" for s in steps))
        if 1000 in results:
            print(f"load + cleanup, N=1000: {results[1000]['load'] + results[1000]['cleanup']:.2f} s")
        if args.big:
            path = tmp / "big.onnx"
            build_big(path)
            t = measure(path, tmp / "big.out.onnx")  # streamline: nothing to do, times the pipeline's own cost
            print("| 1 GiB external initializer | 1 | " + " | ".join(f"{t[s]:.3f}" for s in steps) + " |")


if __name__ == "__main__":
    main()
