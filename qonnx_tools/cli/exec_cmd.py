"""``qonnx exec MODEL``: run a model with the NumPy executor (or onnxruntime) and save outputs."""

from __future__ import annotations

import argparse
import json

import numpy as np

from qonnx_tools.cli._common import add_input_options, add_output_options, check_output_path, gather_inputs, save_npz
from qonnx_tools.executor import Executor
from qonnx_tools.model_io import load
from qonnx_tools.runtime import run_onnxruntime


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("exec", help="run a model on given or random inputs")
    p.add_argument("model", help="ONNX/QONNX model file")
    add_input_options(p)
    add_output_options(p, required=False, in_place=False, help="write outputs (and intermediates if asked) to this .npz")
    p.add_argument("--backend", choices=("numpy", "onnxruntime"), default="numpy",
                   help="numpy: the reference executor (every QONNX op); onnxruntime: standard ops only (default numpy)")
    p.add_argument("--keep-intermediates", action="store_true", help="also save every intermediate tensor (numpy backend)")
    p.add_argument("--json", action="store_true", help="print each output's dtype, shape and range as JSON")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    out = check_output_path(args.output, inputs=(args.model,), force=args.force, in_place=None) if args.output else None
    model = load(args.model)
    feeds = gather_inputs(args, model)
    if args.backend == "onnxruntime":
        results = run_onnxruntime(model, feeds)
    else:
        results = Executor(model).run(feeds, keep_intermediates=args.keep_intermediates)
    report = {"model": args.model, "backend": args.backend, "outputs": {}}
    for name in [v.name for v in model.graph.outputs]:
        array = np.asarray(results[name])
        numeric = bool(array.size) and array.dtype.kind in "iuf"
        report["outputs"][name] = {"dtype": str(array.dtype), "shape": list(array.shape),
                                   "min": array.min().item() if numeric else None,
                                   "max": array.max().item() if numeric else None}
    if out is not None:
        save_npz(out, results)
        report["output"], report["arrays_written"] = str(out), len(results)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    for name, o in report["outputs"].items():
        stats = f"min {o['min']:.6g} max {o['max']:.6g}" if o["min"] is not None else ""
        print(f"{name}: {o['dtype']} {tuple(o['shape'])} {stats}".rstrip())
    if out is not None:
        print(f"wrote {out} ({len(results)} arrays)")
    return 0
