"""bipolar-weights-to-int2: a BipolarQuant of constant weights read only as MatMul/Conv weights becomes
a 2-bit narrow signed Quant of the already-quantized weights ``±scale`` (exact: same values).

Why: hls4ml stores a bipolar tensor in one bit, 1 for +1 and 0 for -1 (its "xnor" type). When both
the data and the weights of a dense or convolution layer are such tensors, its C++ multiplies with
``a == w`` and so sums the *number of agreeing signs* p instead of the ±1 dot product 2p - K: the
outputs are wrong (TFC_1W1A: 16 of 36 top-1 classes differ). With 2-bit signed weights holding ±1,
hls4ml takes its "data binary" product (``a == 0 ? -w : w``), which is the ±1 product.

Left alone: a BipolarQuant whose input is not a constant, with a non-constant scale, or with a
reader other than a MatMul input 1 or a Conv input 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qonnx_tools._ir import ir
from qonnx_tools.constants import constant_array
from qonnx_tools.decline import Decline
from qonnx_tools.domains import QONNX, canonical_domain
from qonnx_tools.passes._rewrite import (
    new_initializer, new_int_quant, read_only_as_weights, remove_with_unused_inputs, unique_name, used_names,
)
from qonnx_tools.passes.base import PassResult, QonnxPass

_NOT_A_WEIGHT = "not a BipolarQuant of constant weights"


@dataclass
class BipolarWeightsToInt2(QonnxPass, name="bipolar-weights-to-int2"):
    """BipolarQuant of constant MatMul/Conv weights -> 2-bit narrow signed Quant of ±scale (exact)"""

    def call(self, model: ir.Model) -> PassResult:
        from qonnx_tools.streamline.frontend import run_kernel

        graph = model.graph
        used = used_names(model)

        def rewrite(node: ir.Node):
            out = node.outputs[0]
            weights = constant_array(node.inputs[0])
            scale = constant_array(node.inputs[1]) if len(node.inputs) > 1 else None
            if weights is None or out.is_graph_output() or not out.uses():
                return Decline(_NOT_A_WEIGHT)
            if not read_only_as_weights(out):
                return Decline("the bipolar weights have a reader other than a MatMul/Conv weight input", node)
            if scale is None:
                return Decline("the scale is not a constant", node)
            if not np.all(np.isfinite(scale)) or np.any(scale <= 0):
                return Decline("the scale is not positive", node)
            # the quantizer's own output (the executor's BipolarQuant kernel): +-scale, the Quant below keeps it
            values = np.asarray(run_kernel(node, model, weights, scale), dtype=np.float32)
            base = node.name or "bipolar_weights"
            quant = new_int_quant(graph, new_initializer(graph, values, unique_name(f"{base}_values", used)), scale,
                                  0, 2, signed=True, narrow=True, base=base, used=used, name=node.name)
            graph.insert_before(node, quant)
            new = quant.outputs[0]
            out.replace_all_uses_with(new)
            name, out.name = out.name, None
            new.name, new.shape, new.type = name, out.shape, out.type
            new.meta.update(out.meta)
            remove_with_unused_inputs(node)
            return True

        candidates = [n for n in graph if n.op_type == "BipolarQuant" and canonical_domain(n.domain) == QONNX]
        return PassResult(model, self.rewrite_each(candidates, rewrite, quiet=(_NOT_A_WEIGHT,)))
