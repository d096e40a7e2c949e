"""``qonnx verify MODEL_A MODEL_B``: do two models compute the same thing?

A runs in the NumPy executor and B in onnxruntime when it has only standard ops and
onnxruntime can load it, else in the executor too (``--backend-a/--backend-b``
choose). The rule and the table are ``qonnx_tools.verify``'s.
"""

from __future__ import annotations

import argparse
import json

from qonnx_tools.cli._common import (
    positive_int,
    add_input_options,
    add_tolerance_options,
    announced_random_inputs,
    gather_inputs,
    tolerance_from_args,
)
from qonnx_tools.errors import BadInputError, VerificationError
from qonnx_tools.model_io import load
from qonnx_tools.verify import BACKENDS, format_table, verify


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("verify", help="compare the outputs of two models on the same inputs")
    p.add_argument("model_a", help="model A, the reference (e.g. the original)")
    p.add_argument("model_b", help="model B, compared with A (e.g. the converted one)")
    add_input_options(p)
    p.add_argument("--runs", type=positive_int, default=None, metavar="N",
                   help="with --random: N seeded input batches (default 1)")
    p.add_argument("--backend-a", choices=BACKENDS, default="executor",
                   help="what runs model A (default executor; onnxruntime runs with optimisations off; "
                        "auto: onnxruntime when the model has only standard ops and onnxruntime can load it, "
                        "else the executor)")
    p.add_argument("--backend-b", choices=BACKENDS, default="auto", help="what runs model B (default auto)")
    add_tolerance_options(p)
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    tolerance = tolerance_from_args(args)
    model_a, model_b = load(args.model_a), load(args.model_b)
    if args.runs is not None and not args.random:
        raise BadInputError("--runs applies to --random inputs only")
    feeds_list = [gather_inputs(args, model_a)]
    for k in range(1, args.runs or 1):
        feeds_list.append(announced_random_inputs(model_a, seed=(args.seed or 0) + k, batch=args.batch))
    report = verify(model_a, model_b, feeds_list, backend_a=args.backend_a, backend_b=args.backend_b,
                    tolerance=tolerance)
    if args.json:
        print(json.dumps({"model_a": args.model_a, "model_b": args.model_b, **report.to_dict()}, indent=2))
    else:
        print(f"A: {args.model_a}\nB: {args.model_b}")
        print(format_table(report))
    if not report.ok:
        raise VerificationError(
            f"{args.model_b}: outputs {report.mismatched} differ from {args.model_a} beyond tolerance"
        )
    return 0
