"""FINN readiness rules."""

from __future__ import annotations

from qonnx_tools._ir import ir
from qonnx_tools.constants import constant_array
from qonnx_tools.decline import Decline
from qonnx_tools.domains import QONNX, STANDARD, canonical_domain
from qonnx_tools.prepare.rules import (
    RESHAPE_ELEMENTS, Rule, fix_by_pass, is_channels_last, is_int_quant, is_op, nonzero_zeropoint, rank, scalar,
)


def _activation_bits(node: ir.Node, model: ir.Model) -> Decline | None:
    data = node.inputs[0] if node.inputs else None
    if data is None or constant_array(data) is not None:
        return None  # a weight quantizer
    bits = scalar(node.inputs[3]) if len(node.inputs) > 3 else None
    if bits is None:
        return Decline("bit width not a constant scalar")
    return Decline(f"activation quantized to {bits:g} bits") if bits > 8 else None


def _trunc_after_avgpool(node: ir.Node, model: ir.Model) -> Decline | None:
    data = node.inputs[0] if node.inputs else None
    producer = data.producer() if data is not None else None
    # the pool's sum may pass through a Mul by the window size first
    for _ in range(3):
        if producer is None:
            return None
        if canonical_domain(producer.domain) == STANDARD and producer.op_type in ("AveragePool", "GlobalAveragePool"):
            mode = node.attributes.get_string("rounding_mode", "FLOOR").upper()
            if mode == "FLOOR":
                return None
            return Decline(f"Trunc after {producer.op_type} rounds with {mode}", producer)
        if producer.op_type not in ("Mul", "Div"):
            return None
        producer = producer.inputs[0].producer() if producer.inputs and producer.inputs[0] is not None else None
    return None


def _not_nchw(node: ir.Node, model: ir.Model) -> Decline | None:
    r = rank(node.inputs[0]) if node.inputs else None
    return Decline(f"channels-last {node.op_type} on a rank-{r if r is not None else '?'} tensor")


RULES = [
    RESHAPE_ELEMENTS,
    Rule("zero-point-zero", is_op("IntQuant", "Quant", "Trunc", domain=QONNX), nonzero_zeropoint,
         "FINN supports only zero-point 0 (symmetric/unsigned quantizers)",
         "none automatic: re-export with zero-point 0 (symmetric or unsigned quantizers)"),
    Rule("activation-bits", is_int_quant, _activation_bits, "activations must be at most 8 bits",
         "none automatic: re-export activation quantizers with bit width <= 8"),
    Rule("trunc-floor-after-avgpool", is_op("Trunc", domain=QONNX), _trunc_after_avgpool,
         "Trunc after an average pool must round with FLOOR",
         "none automatic: re-export the TruncAvgPool with FLOOR rounding"),
    Rule("nchw", is_channels_last, _not_nchw, "FINN expects 4-D tensors in NCHW",
         fix_by_pass("to-channels-first", prepare_runs=False)),
]
