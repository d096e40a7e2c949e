"""``qonnx streamline MODEL -o OUT``: QONNX -> integer-only FINN form (MultiThreshold + integer weights)."""

from __future__ import annotations

import argparse
import json

from qonnx_tools.cli._common import (
    add_input_options,
    add_output_options,
    add_verify_options,
    check_output_path,
    positive_int,
    gather_inputs,
    op_table,
    tolerance_from_args,
)
from qonnx_tools.errors import BadInputError, VerificationError
from qonnx_tools.info import op_counts
from qonnx_tools.model_io import load, save
from qonnx_tools.verify import format_table, reference_run, verify_against


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "streamline",
        help="streamline for FPGA dataflow (FINN): integer weights, MultiThreshold activations, scales absorbed",
    )
    p.add_argument("model", help="QONNX model file")
    p.add_argument("--max-bits", type=int, default=8, metavar="N",
                   help="largest activation bit width turned into thresholds (default 8: 255 thresholds)")
    p.add_argument("--steps", type=positive_int, default=None, metavar="K",
                   help="bound of the rule fixpoint (default 12)")
    add_verify_options(
        p,
        help="compare executor outputs before/after; when they differ beyond tolerance, check each MultiThreshold "
             "layer on the original's own layer inputs and accept only float32 near-ties (exit 1 otherwise)",
    )
    p.add_argument("--report", action="store_true", help="list every node that is still not integer, and why")
    p.add_argument("--json", action="store_true",
                   help="print the report (ops, declined rewrites, non-integer nodes, verification) as JSON")
    add_input_options(p, random_by_default=True)
    add_output_options(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from qonnx_tools.streamline import Streamline, streamline_report
    from qonnx_tools.streamline.pipeline import DEFAULT_STEPS

    if args.max_bits < 1:
        raise BadInputError(f"--max-bits must be >= 1, got {args.max_bits}")
    tolerance = tolerance_from_args(args, needs_verify=True)
    out = check_output_path(args.output, inputs=(args.model,), force=args.force, in_place=args.in_place)
    model = load(args.model, legal_qonnx=True)
    before = op_counts(model)
    reference = None
    if args.verify:
        reference = reference_run(model, gather_inputs(args, model))
    pass_ = Streamline(max_bits=args.max_bits, steps=args.steps or DEFAULT_STEPS)
    pass_(model)
    after = op_counts(model)
    rows = streamline_report(model, max_bits=args.max_bits)
    report = {
        "model": args.model,
        "output": str(out),
        "ops_before": dict(before),
        "ops_after": dict(after),
        "declined": list(pass_.declined),
        "non_integer": [{"node": name, "op": op, "reason": reason} for name, op, reason in rows],
    }
    layers = None
    if reference is not None:
        verified = verify_against(reference, model, backend="executor", tolerance=tolerance)
        report["verify"] = verified.to_dict()
        if not verified.ok:  # end-to-end outputs differ: accept only if every layer agrees on its own inputs
            from qonnx_tools.streamline.layerwise import compare_layers

            layers = compare_layers(load(args.model), model, reference.feeds)
            report["verify_layers"] = {"ok": layers.ok, "summary": layers.summary()}
    written = layers is None or layers.ok
    report["written"] = written
    if written:
        save(model, out)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        _print_report(report, args.report, verified if reference is not None else None)
    if not written:
        raise VerificationError(f"{args.model}: streamlining changed outputs ({layers.summary()}); {out} not written")
    return 0


def _print_report(report: dict, full: bool, verified) -> None:
    before, after = report["ops_before"], report["ops_after"]
    print("\n".join(op_table(before, after, rows=[("nodes", sum(before.values()), sum(after.values()))])))
    for line in report["declined"]:
        print(f"not converted: {line}")
    rows = report["non_integer"]
    if full:
        print("non-integer nodes:" if rows else "non-integer nodes: none")
        for row in rows:
            print(f"  {row['node']} ({row['op']}): {row['reason']}")
    else:
        print(f"non-integer nodes: {len(rows)} (use --report for the list)")
    if verified is not None:
        print(format_table(verified))
    if "verify_layers" in report:
        print(f"verify per layer: {report['verify_layers']['summary']}")
        if report["verify_layers"]["ok"]:
            print(
                "verify: accepted: every layer reproduces the original on its own inputs except near-ties, which "
                "float32 rounds either way; later layers carry such a one-level flip to the outputs"
            )
    if report["written"]:
        print(f"wrote {report['output']}")
