"""``qonnx info MODEL [--json]``: what a model contains and how it is quantized.

Quantizers are counted in every form (QONNX ops, Q/DQ chains, DequantizeLinear of constant
integers, DynamicQuantizeLinear, QLinear* and *Integer ops); ``qonnx_tools.info`` says how each
form is recognised and what counts as a parameter.
"""

from __future__ import annotations

import argparse
import json

from qonnx_tools.info import FORMS, ModelSummary, summarize
from qonnx_tools.model_io import load


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="summarise a model: I/O, opsets, ops, quantizers (every form), weight memory")
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


def _counts(counts: dict[str, int], labels: dict[str, str] | None = None) -> str:
    return ", ".join(f"{(labels or {}).get(k, k)} {n}" for k, n in counts.items())


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
    head = f"quantizers: {len(s.quantizers)}"
    if s.quantizers:
        head += f" ({_counts(s.quantizer_roles)})"
    lines.append(head)
    if s.quantizers:
        lines.append(f"  forms: {_counts(s.quantizer_forms, FORMS)}")
        lines.append(
            f"  {'node':<40} {'op':<16} {'role':<10} {'bits':>5} {'sign':>5} {'narrow':>6} {'round':<9} granularity"
        )
        for q in s.quantizers:
            bits = "?" if q.bitwidth is None else f"{q.bitwidth:g}"
            sign = "-" if q.signed is None else ("s" if q.signed else "u")
            narrow = "-" if q.narrow is None else ("yes" if q.narrow else "no")
            lines.append(
                f"  {q.node[-40:]:<40} {q.op[-16:]:<16} {q.role:<10} {bits:>5} {sign:>5} {narrow:>6} "
                f"{q.rounding_mode or '-':<9} {q.granularity}"
            )
    params = f"parameters: {s.num_parameters}"
    if s.num_parameters:
        r = s.parameters_by_role
        params += (f" (quantized weights {r.get('weight', 0)}, quantized biases {r.get('bias', 0)}, "
                   f"unquantized {r.get('unquantized', 0)})")
    lines.append(params)
    lines.append(
        f"weight memory: {s.weight_bits_float32 / 8 / 1024:.1f} KiB at float32, "
        f"{s.weight_bits_quantized / 8 / 1024:.1f} KiB at quantized bit widths"
    )
    return "\n".join(lines)
