"""``qonnx cleanup MODEL -o OUT``: shapes, constants, identities, names — a clean graph."""

from __future__ import annotations

import argparse
from collections import Counter

from qonnx_tools._ir import ir
from qonnx_tools.cli._common import add_input_options, add_output_options, check_output_path, gather_inputs
from qonnx_tools.compare import compare_outputs
from qonnx_tools.errors import VerificationError
from qonnx_tools.executor import Executor
from qonnx_tools.model_io import load, save
from qonnx_tools.passes import parse_pipeline


def default_pipeline() -> str:
    from qonnx_tools.passes.cleanup import cleanup_pipeline_text

    return cleanup_pipeline_text()


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("cleanup", help="clean a model: infer shapes, fold constants, remove identities, name nodes")
    p.add_argument("model")
    p.add_argument("--passes", help="pipeline string to run instead of the default cleanup pipeline")
    p.add_argument("--fix-batch", type=int, metavar="N", help="set the batch size of inputs/outputs to N first")
    p.add_argument("--verify", action="store_true", help="check executor outputs before/after (exit 1 on mismatch)")
    add_input_options(p)
    add_output_options(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    out = check_output_path(args.output, inputs=(args.model,), force=args.force, in_place=args.in_place)
    model = load(args.model)
    text = args.passes or default_pipeline()
    if args.fix_batch is not None:
        text = f"change-batch-size{{batch={args.fix_batch}}},{text}"
    pipeline = parse_pipeline(text)
    before = _stats(model)
    reference = None
    if args.verify:
        feeds = gather_inputs(args, model)
        reference = (feeds, Executor(model).run(feeds))
    pipeline(model)
    after = _stats(model)
    _print_table(before, after)
    print("passes:")
    for record in pipeline.records:
        print(f"  {record.name:<48} {record.seconds * 1e3:9.1f} ms  {'changed' if record.modified else '-'}")
    if reference is not None:
        feeds, expected = reference
        if args.fix_batch is not None:
            raise VerificationError("--verify cannot compare across --fix-batch (different input shapes)")
        rows = compare_outputs(expected, Executor(model).run(feeds))
        for row in rows:
            print(f"verify {row.name}: max abs {row.max_abs:.3g} ({'ok' if row.ok else 'MISMATCH'})")
        if not all(row.ok for row in rows):
            raise VerificationError(f"{args.model}: cleanup changed outputs")
    save(model, out)
    print(f"wrote {out}")
    return 0


def _stats(model: ir.Model) -> tuple[Counter, int, int]:
    ops = Counter(n.op_type if n.domain == "" else f"{n.domain}:{n.op_type}" for n in model.graph)
    values = [v for n in model.graph for v in n.outputs]
    unknown = sum(1 for v in values if v.shape is None or v.dtype is None)
    return ops, len(model.graph), unknown


def _print_table(before, after) -> None:
    ops_b, n_b, unk_b = before
    ops_a, n_a, unk_a = after
    print(f"{'op':<48} {'before':>7} {'after':>7}")
    for op in sorted(set(ops_b) | set(ops_a)):
        print(f"{op:<48} {ops_b.get(op, 0):>7} {ops_a.get(op, 0):>7}")
    print(f"{'nodes':<48} {n_b:>7} {n_a:>7}")
    print(f"{'values without shape/type':<48} {unk_b:>7} {unk_a:>7}")
