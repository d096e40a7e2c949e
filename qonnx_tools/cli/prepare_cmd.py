"""``qonnx prepare --target {hls4ml,finn,ort,tensorrt,dpu} MODEL -o OUT [--check-only]``: preprocess and check readiness.

Broken rules are listed one line per (op, rule, problem) with a count, and each rule's fix
once (``--verbose``: one line per node; ``--json``: every violation and the ``groups``).
"""

from __future__ import annotations

import argparse
import json

from qonnx_tools.atomic import write_bytes_atomic
from qonnx_tools.cli._common import add_output_options, check_output_path
from qonnx_tools.errors import BadInputError, ConversionError
from qonnx_tools.model_io import load, save
from qonnx_tools.prepare import TARGETS, PrepareResult, check, prepare
from qonnx_tools.refusals import Refused, format_refusals, group_dicts, refused_report, summary


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "prepare", help="run a backend's preprocessing (hls4ml, finn, ort, tensorrt, dpu) and check readiness"
    )
    p.add_argument("model", help="ONNX/QONNX model file")
    p.add_argument("--target", required=True, choices=TARGETS, help="the backend to prepare for (required)")
    p.add_argument("--check-only", action="store_true",
                   help="only report the rules the model breaks, exit 1 if any (default: off, run the target's "
                        "preprocessing, write the result, then report)")
    p.add_argument("--verbose", action="store_true",
                   help="list broken rules one line per node, naming node, op, problem and the values it is about "
                        "(default: one line per problem, with a count and a few node names)")
    p.add_argument("--json", action="store_true",
                   help="print the report as JSON, with every violation and their 'groups' with counts "
                        "(default: text)")
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
        try:
            result = prepare(model, args.target)
        except Refused as refused:  # grouped lines, then a one-line error; nothing written
            _print_refused(refused, args, out)
            raise ConversionError(f"prepare --target {args.target}: {len(refused.refusals)} node(s) refused; "
                                  "nothing written")
        save(model, out)
        if result.hls4ml_config is not None:  # beside the model: M.onnx -> M.hls4ml.json
            config_path = out.with_suffix(".hls4ml.json")
            write_bytes_atomic(config_path, (json.dumps(result.hls4ml_config, indent=1) + "\n").encode())
            result.notes.append(f"hls4ml precisions written to {config_path} (merge its LayerName entries into "
                                "config_from_onnx_model's, see README)")
    if args.json:
        print(json.dumps({**result.to_dict(), "output": None if out is None else str(out), "written": out is not None},
                         indent=2))
    else:
        print(format_result(result, None if out is None else str(out), verbose=args.verbose))
    return 0 if result.ready else 1


def _print_refused(refused: Refused, args: argparse.Namespace, out) -> None:
    if args.json:
        print(json.dumps({
            "target": args.target, "ready": False, "output": str(out), "written": False,
            "violations": [v.to_dict() if hasattr(v, "to_dict") else str(v) for v in refused.items],
            "groups": group_dicts(refused.refusals),
        }, indent=2))
        return
    print("\n".join([f"target: {args.target}", *refused_report(refused, verbose=args.verbose, indent="")]))


def format_result(result: PrepareResult, out: str | None, *, verbose: bool = False) -> str:
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
        count = summary(result.violations, "problem(s)")
        lines.append(f"not ready for {result.target}: {count}" + ("" if verbose else " (--verbose: one line per node)"))
        lines.extend(format_refusals(result.violations, verbose=verbose, indent="  "))
    return "\n".join(lines)
