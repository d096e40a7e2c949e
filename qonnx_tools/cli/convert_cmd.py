"""``qonnx convert --to {qcdq,qop,qonnx} MODEL -o OUT``: change a model's quantization form.

With ``--verify`` the converted model is run (``auto``: onnxruntime with
optimisations off when it has only standard ops and onnxruntime can load it, else
the executor) against the NumPy executor on the original, under
``qonnx_tools.verify``'s rule (``--atol/--rtol/--max-steps/--max-off-fraction``,
the same defaults as ``qonnx verify``); exit 1 and nothing written when they differ.
"""

from __future__ import annotations

import argparse
import json
import os

from qonnx_tools.cli._common import (
    add_input_options,
    add_output_options,
    add_verify_options,
    check_output_path,
    gather_inputs,
    op_table,
    tolerance_from_args,
)
from qonnx_tools.convert import TARGETS, convert
from qonnx_tools.errors import VerificationError
from qonnx_tools.info import op_counts
from qonnx_tools.model_io import load, save
from qonnx_tools.verify import VerifyReport, format_table, reference_run, verify_against


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("convert", help="convert between QONNX, QCDQ and QOp forms")
    p.add_argument("model")
    p.add_argument("--to", required=True, choices=TARGETS)
    p.add_argument("--opset", type=int, help="ai.onnx opset of the result (default: lowest that expresses it)")
    p.add_argument("--keep-float-weights", action="store_true", help="qcdq: keep float weights behind Q->Clip->DQ")
    p.add_argument("--allow-partial", action="store_true", help="write the result even if some nodes stay unconverted")
    add_verify_options(p, help="compare outputs before/after (see --inputs/--random): the original in the executor, "
                               "the result in onnxruntime when it can run it, else the executor; exit 1 and nothing "
                               "written when they differ")
    add_input_options(p, random_by_default=True)
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    add_output_options(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    tolerance = tolerance_from_args(args, needs_verify=True)
    out = check_output_path(args.output, inputs=(args.model,), force=args.force, in_place=args.in_place)
    model = load(args.model, legal_qonnx=True)
    bytes_before = os.path.getsize(args.model)
    before = op_counts(model), dict(model.opset_imports)
    reference = None
    if args.verify:
        reference = reference_run(model, gather_inputs(args, model))
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
    verified: VerifyReport | None = None
    if reference is not None:
        verified = verify_against(reference, model, backend="auto", tolerance=tolerance)
        report["verify"] = verified.to_dict()
    report["bytes_before"] = bytes_before
    report["output"] = str(out)
    if verified is not None and not verified.ok:
        # a failed verification is a failed run: nothing is written
        report["bytes_after"] = None
        print(json.dumps(report, indent=2) if args.json else _format(report, verified))
        raise VerificationError(
            f"{args.model}: converted model differs beyond tolerance (outputs {verified.mismatched}); {out} not written"
        )
    save(model, out)
    report["bytes_after"] = os.path.getsize(out)
    print(json.dumps(report, indent=2) if args.json else _format(report, verified))
    return 0


def _format(report: dict, verified: VerifyReport | None = None) -> str:
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
    if verified is not None:
        lines.append(format_table(verified, indent="  "))
    return "\n".join(lines)
