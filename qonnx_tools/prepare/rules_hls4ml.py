"""hls4ml readiness rules (the model hls4ml's QONNX front end reads)."""

from __future__ import annotations

from qonnx_tools._ir import ir
from qonnx_tools.domains import QONNX
from qonnx_tools.prepare.rules import (
    Rule, any_node, attr, is_int_quant, is_op, is_quantizer, non_constant_params, rank, unknown_shapes, unnamed,
)


def _nchw(node: ir.Node, model: ir.Model) -> str | None:
    r = rank(node.inputs[0]) if node.inputs else None
    if r is None or r < 3:
        return None
    return f"standard (NCHW) {node.op_type} on a rank-{r} tensor"


def _rounding(node: ir.Node, model: ir.Model) -> str | None:
    mode = str(attr(node, "rounding_mode", "ROUND")).upper()
    return None if mode in ("ROUND", "FLOOR") else f"rounding_mode={mode}"


def _narrow_unsigned(node: ir.Node, model: ir.Model) -> str | None:
    if not int(attr(node, "signed", 1)) and int(attr(node, "narrow", 0)):
        return "signed=0 with narrow=1"
    return None


RULES = [
    Rule("shape-known", any_node, unknown_shapes, "every tensor needs a static shape",
         "run infer-shapes (and change-batch-size{batch=1} for a symbolic batch)"),
    Rule("no-gemm", is_op("Gemm"), lambda n, m: "Gemm node", "hls4ml reads MatMul + Add, not Gemm",
         "run gemm-to-matmul"),
    Rule("channels-last", is_op("Conv", "MaxPool", "BatchNormalization"), _nchw,
         "Conv, BatchNormalization and pools must be channels-last", "run to-channels-last"),
    Rule("node-named", any_node, unnamed, "every node needs a name (hls4ml layer names)", "run name-nodes"),
    Rule("quantizer-params-constant", is_quantizer, non_constant_params,
         "quantizer parameters must be constants", "run remove-static-inputs and cleanup (fold-constants)"),
    Rule("rounding-mode", is_op("IntQuant", "Quant", "Trunc", domain=QONNX), _rounding,
         "only ROUND and FLOOR rounding are supported", "re-export the quantizer with ROUND or FLOOR rounding"),
    Rule("no-narrow-unsigned", is_int_quant, _narrow_unsigned, "narrow unsigned quantizers are not supported",
         "re-export with narrow_range=False (or a signed quantizer)"),
]
