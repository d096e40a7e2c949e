"""``qonnx cleanup MODEL -o OUT``: shapes, constants, identities, names — a clean graph."""

from __future__ import annotations

import argparse
import json
from collections import Counter

from qonnx_tools._ir import ir
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
from qonnx_tools.passes import parse_pipeline
from qonnx_tools.verify import format_table, reference_run, verify_against


def default_pipeline() -> str:
    from qonnx_tools.passes.cleanup import cleanup_pipeline_text

    return cleanup_pipeline_text()


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("cleanup", help="clean a model: infer shapes, fold constants, remove identities, name nodes")
    p.add_argument("model", help="ONNX/QONNX model file")
    p.add_argument("--passes", metavar="PIPELINE",
                   help="pipeline string to run instead of the default cleanup pipeline (`qonnx passes` lists them)")
    p.add_argument("--fix-batch", type=positive_int, metavar="N",
                   help="set the batch size of inputs/outputs to N first (default: keep it)")
    p.add_argument("--json", action="store_true", help="print the report (ops, passes, verification) as JSON")
    add_verify_options(p, help="compare executor outputs before/after (exit 1 and nothing written when they differ)")
    add_input_options(p, random_by_default=True)
    add_output_options(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    tolerance = tolerance_from_args(args, needs_verify=True)
    if args.verify and args.fix_batch is not None:
        raise BadInputError("--verify cannot compare across --fix-batch (different input shapes); run them apart")
    out = check_output_path(args.output, inputs=(args.model,), force=args.force, in_place=args.in_place)
    model = load(args.model, legal_qonnx=True)
    text = args.passes or default_pipeline()
    if args.fix_batch is not None:
        text = f"change-batch-size{{batch={args.fix_batch}}},{text}"
    pipeline = parse_pipeline(text)
    before = _stats(model)
    reference = None
    if args.verify:
        reference = reference_run(model, gather_inputs(args, model))
    pipeline(model)
    after = _stats(model)
    report = {
        "model": args.model,
        "output": str(out),
        "ops_before": dict(before[0]),
        "ops_after": dict(after[0]),
        "nodes_before": before[1],
        "nodes_after": after[1],
        "unknown_shapes_before": before[2],
        "unknown_shapes_after": after[2],
        "passes": [{"name": r.name, "ms": round(r.seconds * 1e3, 3), "changed": bool(r.modified)}
                   for r in pipeline.records],
    }
    verified = None
    if reference is not None:
        verified = verify_against(reference, model, backend="executor", tolerance=tolerance)
        report["verify"] = verified.to_dict()
    written = verified is None or verified.ok
    report["written"] = written
    if written:
        save(model, out)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        _print_report(report, verified)
    if not written:
        raise VerificationError(f"{args.model}: cleanup changed outputs {verified.mismatched}; {out} not written")
    return 0


def _stats(model: ir.Model) -> tuple[Counter, int, int]:
    """(op counts, nodes, values whose type or shape is unknown or holds a symbol no graph input has)."""
    input_symbols = {d.value for v in model.graph.inputs if v.shape is not None for d in v.shape if not isinstance(d, int)}
    values = [v for n in model.graph for v in n.outputs]
    unknown = sum(
        1 for v in values
        if v.shape is None or v.dtype is None or any(not isinstance(d, int) and (d.value is None or d.value not in input_symbols) for d in v.shape)
    )
    return op_counts(model), len(model.graph), unknown


def _print_report(report: dict, verified) -> None:
    rows = [("nodes", report["nodes_before"], report["nodes_after"]),
            ("values without a known shape", report["unknown_shapes_before"], report["unknown_shapes_after"])]
    print("\n".join(op_table(report["ops_before"], report["ops_after"], rows=rows)))
    print("passes:")
    for record in report["passes"]:
        print(f"  {record['name']:<48} {record['ms']:9.1f} ms  {'changed' if record['changed'] else '-'}")
    if verified is not None:
        print(format_table(verified))
    if report["written"]:
        print(f"wrote {report['output']}")
