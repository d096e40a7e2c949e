"""``qonnx cost MODEL [--json]``: MACs, bit operations, weight and activation memory."""

from __future__ import annotations

import argparse
import json

from qonnx_tools.cost import CostReport, inference_cost
from qonnx_tools.model_io import load


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("cost", help="inference cost: MACs and bit operations per layer, weight/activation memory")
    p.add_argument("model", help="ONNX/QONNX model file")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    report = inference_cost(load(args.model))  # the loaded copy gets shape info; the file is untouched
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(format_report(args.model, report))
    return 0


def _num(x: float) -> str:
    return f"{int(x):,}" if float(x).is_integer() else f"{x:,.1f}"


def format_report(path: str, r: CostReport) -> str:
    lines = [f"model: {path}", f"layers: {len(r.layers)}"]
    if r.layers:
        header = f"  {'node':<40} {'op':<14} {'MACs':>14} {'act':>9} {'weight':>9} {'bit ops':>16} {'weight bits':>14}"
        lines.append(header)
        for layer in r.layers:
            lines.append(
                f"  {layer.node[-40:]:<40} {layer.op:<14} {_num(layer.macs):>14} {layer.act_type:>9} "
                f"{layer.weight_type:>9} {_num(layer.bitops):>16} {_num(layer.weight_memory_bits):>14}"
            )
    lines.append(f"total MACs: {_num(r.total_macs)}")
    if r.batch is not None and r.batch != 1 and r.macs_per_sample is not None:
        lines.append(f"  batch {r.batch}: {_num(r.macs_per_sample)} MACs per sample")
    lines.append(f"total bit operations: {_num(r.total_bitops)}")
    lines.append(f"weight memory: {_num(r.weight_memory_bits)} bits ({r.weight_memory_bits / 8 / 1024:.1f} KiB)")
    lines.append(
        f"activation memory: {_num(r.activation_memory_bits)} bits ({r.activation_memory_bits / 8 / 1024:.1f} KiB)"
    )
    if r.by_pairing:
        lines.append("by datatype pairing (activation x weight):")
        for key, v in r.by_pairing.items():
            lines.append(f"  {key:<30} MACs {_num(v['macs']):>14}  bit ops {_num(v['bitops']):>16}")
    if r.unsupported:
        lines.append(f"not counted: {len(r.unsupported)}")
        lines.extend(f"  {u}" for u in r.unsupported)
    if r.unknown_shapes:
        lines.append(f"tensors of unknown shape (not in activation memory): {len(r.unknown_shapes)}")
    return "\n".join(lines)
