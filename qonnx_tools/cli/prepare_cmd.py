"""``qonnx prepare --target {hls4ml,finn,ort,tensorrt} MODEL -o OUT [--check-only]``: preprocess and check readiness."""

from __future__ import annotations

import argparse
import json

from qonnx_tools.cli._common import add_output_options, check_output_path
from qonnx_tools.errors import BadInputError
from qonnx_tools.model_io import load, save
from qonnx_tools.prepare import TARGETS, PrepareResult, check, prepare


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "prepare", help="run a backend's preprocessing (hls4ml, finn, ort, tensorrt) and check readiness"
    )
    p.add_argument("model")
    p.add_argument("--target", required=True, choices=TARGETS)
    p.add_argument("--check-only", action="store_true", help="only report the rules the model breaks (exit 1 if any)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    add_output_options(p, required=False, help="prepared model file (required unless --check-only)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if not args.check_only and not args.output:
        raise BadInputError("prepare: -o/--output is required (or use --check-only)")
    out = None if args.check_only else check_output_path(
        args.output, inputs=(args.model,), force=args.force, in_place=args.in_place
    )
    model = load(args.model, legal_qonnx=True)
    if args.check_only:
        result = PrepareResult(args.target, violations=check(model, args.target))
    else:
        result = prepare(model, args.target)
        save(model, out)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        print(format_result(result, None if out is None else str(out)))
    return 0 if result.ready else 1


def format_result(result: PrepareResult, out: str | None) -> str:
    lines = [f"target: {result.target}"]
    for step in result.steps:
        lines.append(f"  ran: {step}")
    for note in result.notes:
        lines.append(f"  note: {note}")
    if out:
        lines.append(f"wrote {out}")
    if result.ready:
        lines.append(f"ready for {result.target}: no rule broken")
    else:
        lines.append(f"not ready for {result.target}: {len(result.violations)} problem(s)")
        lines.extend(f"  {v}" for v in result.violations)
    return "\n".join(lines)
