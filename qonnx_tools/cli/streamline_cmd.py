"""``qonnx streamline MODEL -o OUT``: QONNX -> integer-only FINN form (MultiThreshold + integer weights)."""

from __future__ import annotations

import argparse

from qonnx_tools._ir import ir
from qonnx_tools.cli._common import (
    add_input_options,
    add_output_options,
    add_verify_options,
    check_output_path,
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
    p.add_argument("model")
    p.add_argument("--max-bits", type=int, default=8, metavar="N",
                   help="largest activation bit width turned into thresholds (default 8: 255 thresholds)")
    p.add_argument("--steps", type=int, default=None, metavar="K", help="bound of the rule fixpoint (default 12)")
    add_verify_options(
        p,
        help="compare executor outputs before/after; when they differ beyond tolerance, check each MultiThreshold "
             "layer on the original's own layer inputs and accept only float32 near-ties (exit 1 otherwise)",
    )
    p.add_argument("--report", action="store_true", help="list every node that is still not integer, and why")
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
    print("\n".join(op_table(before, after, rows=[("nodes", sum(before.values()), sum(after.values()))])))
    for line in pass_.declined:
        print(f"not converted: {line}")
    rows = streamline_report(model, max_bits=args.max_bits)
    if args.report:
        print("non-integer nodes:" if rows else "non-integer nodes: none")
        for name, op, reason in rows:
            print(f"  {name} ({op}): {reason}")
    else:
        print(f"non-integer nodes: {len(rows)} (use --report for the list)")
    if reference is not None:
        verified = verify_against(reference, model, backend="executor", tolerance=tolerance)
        print(format_table(verified))
        if not verified.ok:
            _verify_layers(args.model, model, reference.feeds)
    save(model, out)
    print(f"wrote {out}")
    return 0


def _verify_layers(path: str, streamlined: ir.Model, feeds) -> None:
    """End-to-end outputs differ: accept only if every layer agrees on the original's own inputs."""
    from qonnx_tools.streamline.layerwise import compare_layers

    result = compare_layers(load(path), streamlined, feeds)
    print(f"verify per layer: {result.summary()}")
    if not result.ok:
        raise VerificationError(f"{path}: streamlining changed outputs ({result.summary()})")
    print(
        "verify: accepted: every layer reproduces the original on its own inputs except near-ties, which float32 "
        "rounds either way; later layers carry such a one-level flip to the outputs"
    )
