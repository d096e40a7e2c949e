"""``qonnx verify MODEL_A MODEL_B``: do two models compute the same thing?

A runs in the NumPy executor; B runs in onnxruntime when it has only standard
ops (an independent implementation), else in the executor too.
"""

from __future__ import annotations

import argparse
import json

from qonnx_tools.cli._common import add_input_options, gather_inputs
from qonnx_tools.compare import compare_outputs, output_steps
from qonnx_tools.errors import BadInputError, VerificationError
from qonnx_tools.executor import Executor
from qonnx_tools.model_io import load
from qonnx_tools.runtime import only_standard_ops, random_inputs, run_onnxruntime


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("verify", help="compare the outputs of two models on the same inputs")
    p.add_argument("model_a")
    p.add_argument("model_b")
    add_input_options(p)
    p.add_argument("--runs", type=int, default=1, metavar="N", help="with --random: N seeded input batches")
    p.add_argument("--atol", type=float, default=1e-5)
    p.add_argument("--rtol", type=float, default=1e-5)
    p.add_argument("--max-steps", type=float, default=None, help="accept up to this many output quantization steps")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    model_a, model_b = load(args.model_a), load(args.model_b)
    executor_a = Executor(model_a)
    use_ort = only_standard_ops(model_b)
    executor_b = None if use_ort else Executor(model_b)
    steps = output_steps(model_a) or output_steps(model_b)
    feeds_list = [gather_inputs(args, model_a)]
    for k in range(1, max(1, args.runs) if args.random else 1):
        feeds_list.append(random_inputs(model_a, seed=args.seed + k, batch=args.batch))
    rows = []
    for feeds in feeds_list:
        ref = executor_a.run(feeds)
        got = run_onnxruntime(model_b, feeds) if use_ort else executor_b.run(feeds)
        got = _match_names(ref, got)
        rows.append(compare_outputs(ref, got, atol=args.atol, rtol=args.rtol, steps=steps, max_steps=args.max_steps))
    worst = [max((r[i] for r in rows), key=lambda c: (not c.ok, c.max_abs)) for i in range(len(rows[0]))]
    backend_b = "onnxruntime (optimisations off)" if use_ort else "numpy executor"
    if args.json:
        print(json.dumps({"model_b_backend": backend_b, "runs": len(rows), "outputs": [c.to_dict() for c in worst]}, indent=2))
    else:
        print(f"A: {args.model_a} (numpy executor)  B: {args.model_b} ({backend_b})  runs: {len(rows)}")
        print(f"  {'output':<24} {'max abs':>12} {'max rel':>12} {'max steps':>10} {'% exact':>8}  result")
        for c in worst:
            steps_txt = "-" if c.max_steps is None else f"{c.max_steps:.3g}"
            print(f"  {c.name[-24:]:<24} {c.max_abs:>12.4g} {c.max_rel:>12.4g} {steps_txt:>10} {c.pct_exact:>8.2f}  {'ok' if c.ok else 'MISMATCH'}")
    bad = [c.name for c in worst if not c.ok]
    if bad:
        raise VerificationError(f"{args.model_b}: outputs {bad} differ from {args.model_a} beyond tolerance")
    return 0


def _match_names(ref: dict, got: dict) -> dict:
    """Pair outputs by name, or by position when the two models name them differently."""
    if set(ref) <= set(got):
        return got
    if len(ref) != len(got):
        raise BadInputError(f"models have different numbers of outputs ({len(ref)} vs {len(got)})")
    return dict(zip(ref, got.values()))
