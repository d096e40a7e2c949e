"""``qonnx info MODEL [--json]``: what a model contains and how it is quantized."""

from __future__ import annotations

import argparse
import json

from qonnx_tools.info import ModelSummary, summarize
from qonnx_tools.model_io import load


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="summarise a model: I/O, opsets, ops, quantizers, weight memory")
    p.add_argument("model", help="ONNX/QONNX model file")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    summary = summarize(load(args.model))
    if args.json:
        print(json.dumps(summary.to_dict(), indent=2))
    else:
        print(format_summary(args.model, summary))
    return 0


def format_summary(path: str, s: ModelSummary) -> str:
    """Human-readable summary, one section per topic."""
    lines = [f"model: {path}", f"ir_version: {s.ir_version}  opsets: " + ", ".join(f"{d}={v}" for d, v in s.opsets.items())]
    for title, tensors in (("inputs", s.inputs), ("outputs", s.outputs)):
        lines.append(f"{title}:")
        for t in tensors:
            shape = "?" if t.shape is None else "(" + ", ".join(map(str, t.shape)) + ")"
            extra = f"  datatype {t.datatype}" if t.datatype else ""
            lines.append(f"  {t.name}: {t.dtype} {shape}{extra}")
    lines.append(f"nodes: {s.num_nodes}")
    for op, n in s.op_counts.items():
        lines.append(f"  {op:<44} {n:>5}")
    lines.append(f"quantizers: {len(s.quantizers)}")
    if s.quantizers:
        lines.append(f"  {'node':<48} {'op':<14} {'role':<10} {'bits':>5} {'sign':>5} {'narrow':>6} {'round':<9} granularity")
        for q in s.quantizers:
            bits = "?" if q.bitwidth is None else f"{q.bitwidth:g}"
            sign = "-" if q.signed is None else ("s" if q.signed else "u")
            narrow = "-" if q.narrow is None else ("yes" if q.narrow else "no")
            lines.append(
                f"  {q.node[-48:]:<48} {q.op:<14} {q.role:<10} {bits:>5} {sign:>5} {narrow:>6} {q.rounding_mode or '-':<9} {q.granularity}"
            )
    lines.append(f"parameters: {s.num_parameters}")
    lines.append(
        f"weight memory: {s.weight_bits_float32 / 8 / 1024:.1f} KiB at float32, "
        f"{s.weight_bits_quantized / 8 / 1024:.1f} KiB at quantized bit widths"
    )
    return "\n".join(lines)
