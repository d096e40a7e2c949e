"""factor-out-weight-scale: a Quant (IntQuant) of constant MatMul/Conv weights with a per-channel scale
that is not a power of two keeps only the codes (scale 1, same zero point, bit width and range) and a
Mul by the scale follows the layer, per output channel.

Exact in real arithmetic (``x @ (c * s) = (x @ c) * s`` column by column); in float32 the products
are rounded in another order (differences of a few ulp). Why: hls4ml 1.3 rescales such weights
with a constant layer it cannot fold and stops with "IndexError: list index out of range"
(kwsmlp_w3a3: every layer); with integer codes it knows the weights' bit width exactly and the
Mul becomes one of its per-channel scaling layers.

Left alone: a per-tensor or power-of-two scale (hls4ml handles both), a scale that varies along
another axis than the output channels, a Conv with a bias (the bias is added before the Mul), weights
with another reader, a MatMul whose weights are not 2-D.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qonnx_tools._ir import ir
from qonnx_tools.decline import Decline
from qonnx_tools.domains import CHANNELS_LAST, canonical_domain
from qonnx_tools.passes._rewrite import (
    drop_if_unused, new_initializer, read_only_as_weights, unique_name, used_names,
)
from qonnx_tools.passes.base import PassResult, QonnxPass
from qonnx_tools.passes.dequantize_rescaled_constants import constant_quantizer

_NOT_A_CANDIDATE = "not a per-channel quantizer of weights with a scale that is not a power of two"


def _channel_scale(scale: np.ndarray, shape: tuple[int, ...], axis: int) -> np.ndarray | None:
    """``scale`` as one value per channel along ``axis`` of weights of ``shape``, or None when it varies
    along another axis."""
    full = np.broadcast_to(scale, shape)
    moved = np.moveaxis(full, axis, 0).reshape(shape[axis], -1)
    if not np.all(moved == moved[:, :1]):
        return None
    return np.ascontiguousarray(moved[:, 0])


@dataclass
class FactorOutWeightScale(QonnxPass, name="factor-out-weight-scale"):
    """per-channel weight Quant scale (not a power of two) -> codes in the Quant, Mul(scale) after the layer"""

    def call(self, model: ir.Model) -> PassResult:
        from qonnx_tools.streamline.frontend import run_kernel

        graph = model.graph
        used = used_names(model)

        def rewrite(node: ir.Node):
            arrays = constant_quantizer(node)
            out = node.outputs[0]
            if arrays is None or np.asarray(arrays[1]).size == 1 or out.is_graph_output() or not read_only_as_weights(out):
                return Decline(_NOT_A_CANDIDATE)
            if len(out.uses()) != 1:
                return Decline("the weights have more than one reader", node)
            layer = out.uses()[0][0]
            weights, scale, zero_point = (np.asarray(a) for a in arrays[:3])
            if layer.op_type == "MatMul":
                if weights.ndim != 2:
                    return Decline(f"rank-{weights.ndim} MatMul weights", layer)
                axis, out_axis = 1, -1
            else:
                if len(layer.inputs) > 2 and layer.inputs[2] is not None:
                    return Decline("a Conv with a bias (added before the scale)", layer)
                axis = 0
                out_axis = -1 if canonical_domain(layer.domain) == CHANNELS_LAST else 1
            channel_scale = _channel_scale(scale.astype(np.float32), weights.shape, axis)
            if channel_scale is None:
                return Decline("the scale varies along another axis than the output channels", node)
            y = layer.outputs[0]
            rank = len(y.shape) if y.shape is not None else None
            if out_axis == 1 and rank is None:
                return Decline("the Conv output's rank is unknown", layer)
            try:
                values = np.asarray(run_kernel(node, model, *arrays), dtype=np.float32)
            except Exception as exc:
                return Decline(f"the quantizer cannot be evaluated ({exc})", node)
            shape = [1] * weights.ndim
            shape[axis] = -1
            codes = np.rint(values.astype(np.float64) / channel_scale.reshape(shape)).astype(np.float32)
            if not np.array_equal((codes * channel_scale.reshape(shape)).astype(np.float32), values):
                return Decline("codes times scale do not reproduce the quantizer output", node)
            base = node.name or out.name or "weights"
            old_inputs = (node.inputs[0], node.inputs[1])
            node.replace_input_with(0, new_initializer(graph, codes, unique_name(f"{base}_codes", used)))
            node.replace_input_with(1, new_initializer(graph, np.float32(1.0), unique_name(f"{base}_unit_scale", used)))
            mul_shape = (-1,) if out_axis == -1 else (-1,) + (1,) * (rank - 2)
            factor = new_initializer(graph, channel_scale.reshape(mul_shape), unique_name(f"{base}_channel_scale", used))
            mul = ir.Node("", "Mul", [None, factor], name=unique_name(f"{layer.name or base}_scale", used), num_outputs=1)
            graph.insert_after(layer, mul)
            scaled = mul.outputs[0]
            was_output = y.is_graph_output()
            y.replace_all_uses_with(scaled, replace_graph_outputs=True)
            mul.replace_input_with(0, y)
            scaled.shape, scaled.type = y.shape, y.type
            if was_output:  # the graph output keeps its name
                name = y.name
                y.name = unique_name(f"{name}_unscaled", used)
                scaled.name = name
            else:
                scaled.name = unique_name(f"{y.name or base}_scaled", used)
            for old in old_inputs:
                drop_if_unused(old)
            return True

        quantizers = [n for n in graph if n.op_type in ("Quant", "IntQuant")]
        return PassResult(model, self.rewrite_each(quantizers, rewrite, quiet=(_NOT_A_CANDIDATE,)))
