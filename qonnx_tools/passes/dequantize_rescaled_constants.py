"""dequantize-rescaled-constants: a Quant (IntQuant) of constants whose scale is not a power of two and
that is not read as MatMul/Conv weights (a bias, a constant operand) becomes the float constant it
computes (exact: the values are the quantizer's own outputs).

Why: hls4ml 1.3 turns such a quantizer into a constant layer plus a rescaling layer that it can
fold into nothing but a weight; the constant is left without inputs and its precision inference stops
with "IndexError: list index out of range" (brevitas/maxpool_quanttensor: the two quantized biases).
A float constant is given hls4ml's fixed-point precision instead, within its declared step. Weights
keep their quantizer: hls4ml takes their bit width from it (``factor-out-weight-scale`` handles
per-channel scales).

Left alone: a quantizer with a non-constant input or parameter, a power-of-two scale (hls4ml makes
it the constant's type), a graph output.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qonnx_tools._ir import ir
from qonnx_tools.constants import constant_array, is_power_of_two
from qonnx_tools.decline import Decline
from qonnx_tools.domains import QONNX, canonical_domain
from qonnx_tools.passes._rewrite import (
    new_initializer, read_only_as_weights, remove_with_unused_inputs, unique_name, used_names,
)
from qonnx_tools.passes.base import PassResult, QonnxPass

_NOT_A_CANDIDATE = "not a quantizer of constants with a scale that is not a power of two"


def constant_quantizer(node: ir.Node) -> list[np.ndarray] | None:
    """The constant inputs of a Quant/IntQuant of constants whose scale is not a power of two, or None."""
    if canonical_domain(node.domain) != QONNX or node.op_type not in ("Quant", "IntQuant"):
        return None
    arrays = [constant_array(v) if v is not None else None for v in node.inputs]
    if len(arrays) != 4 or any(a is None for a in arrays) or is_power_of_two(arrays[1]):
        return None
    return arrays


@dataclass
class DequantizeRescaledConstants(QonnxPass, name="dequantize-rescaled-constants"):
    """Quant of constants (not weights) with a scale that is not a power of two -> its float values (exact)"""

    def call(self, model: ir.Model) -> PassResult:
        from qonnx_tools.streamline.frontend import run_kernel

        graph = model.graph
        used = used_names(model)

        def rewrite(node: ir.Node):
            arrays = constant_quantizer(node)
            out = node.outputs[0]
            if arrays is None or out.is_graph_output() or read_only_as_weights(out):
                return Decline(_NOT_A_CANDIDATE)
            try:
                values = np.asarray(run_kernel(node, model, *arrays), dtype=np.float32)
            except Exception as exc:  # illegal parameters: the executor reports them on run
                return Decline(f"the quantizer cannot be evaluated ({exc})", node)
            constant = new_initializer(graph, values, unique_name(f"{out.name or node.name}_values", used))
            out.replace_all_uses_with(constant)
            remove_with_unused_inputs(node)
            return True

        quantizers = [n for n in graph if n.op_type in ("Quant", "IntQuant")]
        return PassResult(model, self.rewrite_each(quantizers, rewrite, quiet=(_NOT_A_CANDIDATE,)))
