"""``qonnx convert --to {qcdq,qop,qonnx} MODEL -o OUT``: change a model's quantization form.

With ``--verify`` the converted model is run (onnxruntime when it has only standard
ops, optimisations off) against the NumPy executor on the original, and the
differences are reported in output quantization steps; exit 1 when they exceed
one step on more than 0.1% of elements (or 1e-5 relative for unquantized outputs).
"""

from __future__ import annotations

import argparse
import json
import os

from qonnx_tools.cli._common import add_input_options, add_output_options, check_output_path, gather_inputs, op_table
from qonnx_tools.compare import compare_outputs, output_steps
from qonnx_tools.convert import TARGETS, convert
from qonnx_tools.errors import VerificationError
from qonnx_tools.executor import Executor
from qonnx_tools.info import op_counts
from qonnx_tools.model_io import load, save
from qonnx_tools.runtime import only_standard_ops, run_onnxruntime

#: --verify tolerance for quantized outputs: at most one step, on at most this share of elements
MAX_STEPS = 1.0
MAX_OFF_FRACTION = 0.001


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("convert", help="convert between QONNX, QCDQ and QOp forms")
    p.add_argument("model")
    p.add_argument("--to", required=True, choices=TARGETS)
    p.add_argument("--opset", type=int, help="ai.onnx opset of the result (default: lowest that expresses it)")
    p.add_argument("--keep-float-weights", action="store_true", help="qcdq: keep float weights behind Q->Clip->DQ")
    p.add_argument("--allow-partial", action="store_true", help="write the result even if some nodes stay unconverted")
    p.add_argument("--verify", action="store_true", help="compare outputs before/after (see --inputs/--random)")
    add_input_options(p)
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    add_output_options(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    out = check_output_path(args.output, inputs=(args.model,), force=args.force, in_place=args.in_place)
    model = load(args.model)
    bytes_before = os.path.getsize(args.model)
    before = op_counts(model), dict(model.opset_imports)
    reference = None
    if args.verify:
        feeds = gather_inputs(args, model)
        reference = (feeds, Executor(model).run(feeds), output_steps(model))
    options = {"allow_partial": args.allow_partial}
    if args.to in ("qcdq", "qop"):
        options["opset"] = args.opset
    if args.to == "qcdq":
        options["keep_float_weights"] = args.keep_float_weights
    result = convert(model, to=args.to, **options)
    report = {
        "model": args.model,
        "to": args.to,
        "ops_before": dict(before[0]),
        "ops_after": dict(op_counts(model)),
        "opsets_before": {k or "ai.onnx": v for k, v in before[1].items()},
        "opsets_after": {k or "ai.onnx": v for k, v in model.opset_imports.items()},
        "unconverted": [str(u) for u in result.unconverted],
        "notes": list(result.notes),
    }
    verified = None
    if reference is not None:
        verified = _verify(model, reference)
        report["verify"] = verified
    report["bytes_before"] = bytes_before
    report["output"] = str(out)
    if verified is not None and not all(row["ok"] for row in verified):
        # a failed verification is a failed run: nothing is written
        report["bytes_after"] = None
        print(json.dumps(report, indent=2) if args.json else _format(report))
        raise VerificationError(f"{args.model}: converted model differs beyond tolerance; {out} not written")
    save(model, out)
    report["bytes_after"] = os.path.getsize(out)
    print(json.dumps(report, indent=2) if args.json else _format(report))
    return 0


def _verify(model, reference) -> list[dict]:
    feeds, expected, steps = reference
    got = run_onnxruntime(model, feeds) if only_standard_ops(model) else Executor(model).run(feeds)
    rows = []
    for cmp in compare_outputs(expected, got, atol=0.0, rtol=1e-5, steps=steps):
        row = cmp.to_dict()
        if cmp.max_steps is not None:
            row["ok"] = cmp.max_steps <= MAX_STEPS + 1e-6 and (100.0 - cmp.pct_exact) <= 100.0 * MAX_OFF_FRACTION
        row["backend"] = "onnxruntime" if only_standard_ops(model) else "numpy"
        rows.append(row)
    return rows


def _format(report: dict) -> str:
    lines = [f"{report['model']} -> {report['output']} ({report['to']})"]
    lines += op_table(report["ops_before"], report["ops_after"], indent="  ", width=44)
    fmt = lambda d: ", ".join(f"{k}={v}" for k, v in sorted(d.items()))  # noqa: E731
    lines.append(f"  opsets: {fmt(report['opsets_before'])} -> {fmt(report['opsets_after'])}")
    after = "not written" if report["bytes_after"] is None else f"{report['bytes_after']} bytes"
    lines.append(f"  file size: {report['bytes_before']} bytes -> {after}")
    for item in report["unconverted"]:
        lines.append(f"  not converted: {item}")
    for note in report["notes"]:
        lines.append(f"  note: {note}")
    for row in report.get("verify", []):
        steps = "-" if row["max_steps"] is None else f"{row['max_steps']:.3g}"
        lines.append(
            f"  verify {row['name']} ({row['backend']}): max abs {row['max_abs']:.3g}, max steps {steps}, "
            f"{row['pct_exact']:.2f}% exact: {'ok' if row['ok'] else 'MISMATCH'}"
        )
    return "\n".join(lines)
