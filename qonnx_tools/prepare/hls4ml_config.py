"""Per-layer fixed-point precisions for hls4ml, from a static bound on every tensor of a prepared model.

hls4ml infers the precision of quantized layers itself ("auto") but gives every float-valued layer
(BatchNormalization, merges with constants, the input) its default, ``fixed<16,6>``: 10 fractional
bits, which moved TFC_2W2A's outputs by up to 0.31.
``hls4ml_config(model)`` bounds every tensor by interval arithmetic (a quantizer's output by its
scale and code range, a MatMul/Conv with constant weights per output channel, BatchNormalization
per channel, elementwise ops with their operands' bounds) and gives each float-valued layer hls4ml
does not type itself (BatchNormalization, Add, Sub, Mul, Div) ``fixed<I + F, I>``: I integer bits
(sign included) that hold its bound, F fractional bits (``fractional_bits``, default 20). The graph input, whose range the graph does not say, gets
``input_integer_bits`` (default 16). The model default is the widest of them, for layers hls4ml
creates on its own.

The result is a partial hls4ml configuration (``Model`` and ``LayerName`` keyed by our node names):
merge its ``LayerName`` entries into ``hls4ml.utils.config.config_from_onnx_model(model,
granularity="name", default_precision=config["Model"]["Precision"]["default"])``.
"""

from __future__ import annotations

import math

import numpy as np

from qonnx_tools._ir import ir
from qonnx_tools.constants import constant_array
from qonnx_tools.domains import CHANNELS_LAST, QONNX, STANDARD, canonical_domain

#: ops whose output is bounded by their (first) input's bound
_SAME_BOUND = frozenset({
    "Relu", "MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "Reshape", "Flatten", "Transpose",
    "Resize", "Identity", "Squeeze", "Unsqueeze", "Pad", "Dropout",
})
_UNIT_BOUND = frozenset({"Softmax", "Sigmoid", "Tanh", "Softsign", "HardSigmoid"})
_QUANTIZERS = frozenset({"Quant", "IntQuant", "BipolarQuant"})
#: float-valued layers whose precision hls4ml does not infer (it gives them its default). Dense/Conv results
#: are left to hls4ml's own inference: it moves a weight scale that is not a power of two behind the layer,
#: so the layer's output is the unscaled integer sum (binary_ternary: up to 64 where the ONNX MatMul gives
#: 6.4; a precision from the ONNX bound wrapped it).
#: fractional bits of every float-valued layer by default (its step is 2^-20 ~ 1e-6)
FRACTIONAL_BITS = 20
_CONFIGURED = frozenset({"BatchNormalization", "Add", "Sub", "Mul", "Div"})


def _quant_bound(node: ir.Node) -> float | None:
    arrays = [constant_array(v) if v is not None else None for v in node.inputs[1:4]]
    if node.op_type == "BipolarQuant":
        return float(np.max(np.abs(arrays[0]))) if arrays[0] is not None else None
    if any(a is None for a in arrays):
        return None
    from qonnx_tools.ops._rounding import int_bounds

    scale, zero_point, bits = (np.asarray(a, np.float64) for a in arrays)
    low, high = int_bounds(bool(node.attributes.get_int("signed", 1)), bool(node.attributes.get_int("narrow", 0)),
                           np.rint(bits))
    return float(np.max(np.abs(scale) * np.maximum(np.abs(low - zero_point), np.abs(high - zero_point))))


def _linear_bound(node: ir.Node, data: float, axis: int) -> float | None:
    """max over output channels of sum |W| * data (+ |bias|), with W's output channels on ``axis``."""
    weights = constant_array(node.inputs[1]) if len(node.inputs) > 1 else None
    if weights is None:
        return None
    reduce = tuple(i for i in range(weights.ndim) if i != axis % weights.ndim)
    per_channel = np.abs(weights.astype(np.float64)).sum(axis=reduce) * data
    bias = constant_array(node.inputs[2]) if len(node.inputs) > 2 and node.inputs[2] is not None else None
    if bias is not None:
        per_channel = per_channel + np.abs(bias.astype(np.float64)).reshape(-1)
    return float(per_channel.max()) if per_channel.size else 0.0


def _batchnorm_bound(node: ir.Node, data: float) -> float | None:
    gamma, beta, mean, var = (constant_array(v) if v is not None else None for v in node.inputs[1:5])
    if any(a is None for a in (gamma, beta, mean, var)):
        return None
    a = gamma.astype(np.float64) / np.sqrt(var.astype(np.float64) + node.attributes.get_float("epsilon", 1e-5))
    return float(np.max(np.abs(a) * data + np.abs(beta - a * mean)))


def _node_bound(node: ir.Node, bounds: dict[str, float]) -> float | None:
    def of(index: int) -> float | None:
        if index >= len(node.inputs) or node.inputs[index] is None:
            return None
        return bounds.get(node.inputs[index].name)

    domain, op = canonical_domain(node.domain), node.op_type
    if domain == QONNX and op in _QUANTIZERS:
        return _quant_bound(node)
    if domain not in (STANDARD, CHANNELS_LAST):
        return None
    x = of(0)
    if op in _UNIT_BOUND:
        return 1.0
    if x is None:
        return None
    if op in _SAME_BOUND:
        return x
    if op == "MatMul":
        linear = _linear_bound(node, x, axis=-1)
        if linear is not None or of(1) is None:
            return linear
        inner = node.inputs[1].shape[-2] if node.inputs[1].shape is not None else None
        return x * of(1) * inner if isinstance(inner, int) else None
    if op == "Conv":
        return _linear_bound(node, x, axis=0)
    if op == "BatchNormalization":
        return _batchnorm_bound(node, x)
    y = of(1)
    if op in ("Add", "Sub", "Max", "Min") and y is not None:
        return x + y if op in ("Add", "Sub") else max(x, y)
    if op == "Mul" and y is not None:
        return x * y
    if op == "Div":
        divisor = constant_array(node.inputs[1])
        if divisor is not None and np.all(divisor != 0):
            return x / float(np.min(np.abs(divisor)))
    if op == "Concat":
        parts = [of(i) for i in range(len(node.inputs))]
        return None if any(p is None for p in parts) else max(parts)
    return None


def value_bounds(model: ir.Model, input_bound: float) -> dict[str, float]:
    """A bound on max |value| of every tensor it can bound (graph inputs: ``input_bound``), by name."""
    bounds: dict[str, float] = {}
    for value in model.graph.inputs:
        array = constant_array(value)
        bounds[value.name] = float(np.max(np.abs(array))) if array is not None and array.size else input_bound
    for value in model.graph.initializers.values():
        array = constant_array(value)
        if array is not None and array.size and np.issubdtype(array.dtype, np.number):
            bounds[value.name] = float(np.max(np.abs(array.astype(np.float64))))
    for node in model.graph:  # topological order (prepare sorts the graph)
        bound = _node_bound(node, bounds)
        if bound is not None and math.isfinite(bound):
            for out in node.outputs:
                bounds[out.name] = bound
    return bounds


def integer_bits(bound: float) -> int:
    """Integer bits of a signed ap_fixed (sign bit included) whose range [-2^(I-1), 2^(I-1)) holds +-bound."""
    return 1 if bound < 1 else math.floor(math.log2(bound)) + 2


def hls4ml_config(model: ir.Model, *, fractional_bits: int = FRACTIONAL_BITS, input_integer_bits: int = 16) -> dict:
    """The partial hls4ml configuration described in the module docstring."""
    bounds = value_bounds(model, input_bound=2.0 ** (input_integer_bits - 1) - 2.0 ** -fractional_bits)
    layers: dict[str, dict] = {}
    widest = input_integer_bits
    for value in model.graph.inputs:
        if value.const_value is None:
            layers[value.name] = {"Precision": {"result": f"fixed<{input_integer_bits + fractional_bits},{input_integer_bits}>"}}
    for node in model.graph:
        if node.op_type not in _CONFIGURED or canonical_domain(node.domain) == QONNX or not node.name:
            continue
        bound = bounds.get(node.outputs[0].name) if node.outputs else None
        if bound is None:
            continue
        bits = integer_bits(bound)
        widest = max(widest, bits)
        layers[node.name] = {"Precision": {"result": f"fixed<{bits + fractional_bits},{bits}>"}}
    convolutional = any(node.op_type == "Conv" for node in model.graph)
    return {
        "Model": {"Precision": {"default": f"fixed<{widest + fractional_bits},{widest}>"}, "ReuseFactor": 1,
                  "Strategy": "Latency"},
        "LayerName": layers,
        # hls4ml's advice: streams for convolutional models (fully unrolled convolutions do not compile in
        # reasonable time: residual_shared_quant's 16x16x16 layers ran g++ for over 10 minutes at 5.7 GB)
        "IOType": "io_stream" if convolutional else "io_parallel",
    }
