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

The constants of hls4ml's scaling layers. hls4ml 1.3 applies every scale it does not make a type with
an ``ApplyAlpha`` layer (a BatchNormalization: ``y = scale * x + bias``) and types its weights ``scale``
and ``bias`` from that layer's configuration, keys ``Precision: {scale: ..., bias: ...}``, else from the
model default (20 fractional bits, whatever the constant's magnitude). Its ONNX passes
(``hls4ml/model/optimizer/passes``), which ``scaling_constants`` follows through our graph:

* a Quant ``q`` whose zero point is not 0 or whose scale is not 1 or one positive power of two for the
  whole tensor (``quant_opt.py``): on a computed tensor, ``q_scale`` (scale 1/s, bias z) before the
  quantizing activation and ``q_rescale`` (scale s, bias -z s) after it; on constant weights, the codes and
  ``q_rescale``; both with a copy of ``q``'s configuration. A BipolarQuant with a scale other than 1
  gives ``q_rescale`` alone.
* ``q_rescale`` moves below a MatMul or Conv when its bias is 0 and, for the data's, its scale is one
  for the tensor (``move_scales.py``); input and weight scales multiply (a Conv's bias b: the moved layer
  gets bias b (1 - s), per-tensor scales only);
* an Add, Sub, Mul or Div ``n`` with a constant operand becomes ``bn_n`` (scale 1, 1, c or 1/c; bias c, c,
  0 or 0), an ONNX BatchNormalization ``n`` a BatchNormalization ``n`` (``merge_const.py``,
  ``batchnorm_opt.py``), both with ``n``'s configuration;
* a scaling layer merges into the next one (``FuseConsecutiveBatchNormalization``: scale s0 s1, bias
  s1 b0 + b1) when its result type is unset, as ``q_rescale``'s is; the result types set above stop it.

So the input scale x weight scale behind a Dense ends, with the bias of the Add after it, in ``bn_Add``
(or, for per-channel weight scales, with them in ``bn_<MatMul>_scale``, the Mul ``factor-out-weight-scale``
writes): for the digits MLP at 8 bits per tensor 2.7e-5, which 20 fractional bits hold to 5 significant
bits (1.3% low), and every logit moved by 0.08-0.41. Each entry of our configuration that hls4ml types
such a layer from (the node ``n``, or the Quant ``q`` whose rescale stays where it is) gets ``scale`` and
``bias`` precisions ``fixed<I + F, I>`` for the constants that end there (``constant_precision``): I holds
the largest |value|, F gives the smallest nonzero one ``SIGNIFICANT_BITS`` (24, float32's) significant
bits, F >= ``fractional_bits``; a value under 2^-24 of the largest counts as 2^-24 of it (its error, under
2^-47 of the largest, is far below the largest one's own), which bounds F. Not followed: a rescaled
tensor with several readers (rule ``shared-rescaled-activation``: hls4ml computes it wrongly anyway).
Layers hls4ml types itself ignore these keys (an Add's scale 1 is a ``uint<1>``; a quantized constant
keeps its quantizer's type). A model-level ``Precision.scale``/``bias`` would reach the scaling layers
too, but at one width for all, and ``bias`` would also widen every Dense/Conv bias and accumulator.

The result is a partial hls4ml configuration (``Model`` and ``LayerName`` keyed by our node names):
merge its ``LayerName`` entries into ``hls4ml.utils.config.config_from_onnx_model(model,
granularity="name", default_precision=config["Model"]["Precision"]["default"])``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

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


#: significant bits every constant of hls4ml's scaling layers keeps (float32's 24)
SIGNIFICANT_BITS = 24


@dataclass(frozen=True)
class Magnitudes:
    """The smallest nonzero (``low``; inf: none) and the largest (``high``) |value| of a set of constants."""

    low: float = math.inf
    high: float = 0.0

    @classmethod
    def of(cls, array) -> Magnitudes:
        a = np.abs(np.asarray(array, np.float64)).reshape(-1)
        nonzero = a[a > 0]
        return cls(float(nonzero.min()) if nonzero.size else math.inf, float(a.max()) if a.size else 0.0)

    @property
    def uniform(self) -> bool:
        """One magnitude (or none): a per-tensor scale."""
        return self.low == self.high or self.high == 0

    def __or__(self, other: Magnitudes) -> Magnitudes:
        """Both sets."""
        return Magnitudes(min(self.low, other.low), max(self.high, other.high))

    def __mul__(self, other: Magnitudes) -> Magnitudes:
        """The elementwise products (bounds)."""
        if self.high == 0 or other.high == 0:
            return Magnitudes()
        return Magnitudes(self.low * other.low, self.high * other.high)

    def __add__(self, other: Magnitudes) -> Magnitudes:
        """The elementwise sums (bounds; the smallest nonzero one taken as the smaller of the two)."""
        return Magnitudes(min(self.low, other.low), self.high + other.high)


_ONE, _ZERO = Magnitudes(1.0, 1.0), Magnitudes()


@dataclass(frozen=True)
class _Pending:
    """A scaling layer hls4ml has not placed yet: it holds the tensor as (value - bias) / scale and applies
    ``scale``/``bias`` further down; ``names``: the entries of our configuration it would take its precision
    from if it stayed where it is (the Quant nodes whose ``q_rescale`` it is)."""

    scale: Magnitudes
    bias: Magnitudes
    names: tuple[str, ...]


def plain_quantizer(scale: np.ndarray, zero_point: np.ndarray) -> bool:
    """hls4ml makes such a Quant a type, without scaling layers: zero point 0 and one scale for the whole
    tensor that is 1 or a positive power of two (``quant_opt.QuantToActivation``'s test)."""
    if np.any(zero_point != 0):
        return False
    flat = scale.reshape(-1)
    return bool(np.all(flat == 1) or (flat.size and np.all(flat == flat[0]) and np.frexp(flat[0])[0] == 0.5))


def scaling_constants(model: ir.Model) -> dict[str, tuple[Magnitudes, Magnitudes]]:
    """node name -> (scale, bias) magnitudes of the scaling layers hls4ml 1.3 types from that node's
    configuration entry, following its passes (module docstring) through ``model`` in topological order."""
    carried: dict[str, tuple[Magnitudes, Magnitudes]] = {}
    pending: dict[str, _Pending] = {}

    def record(name: str, scale: Magnitudes, bias: Magnitudes) -> None:
        if name:
            old_scale, old_bias = carried.get(name, (_ZERO, _ZERO))
            carried[name] = (old_scale | scale, old_bias | bias)

    def settle(value: ir.Value | None) -> None:
        """The pending scaling layer of ``value`` stays where it is (its Quants' entries type it)."""
        p = pending.pop(value.name, None) if value is not None else None
        if p is not None:
            for name in p.names:
                record(name, p.scale, p.bias)

    def take(value: ir.Value | None) -> _Pending | None:
        return pending.pop(value.name, None) if value is not None else None

    def put(value: ir.Value, p: _Pending) -> None:
        pending[value.name] = p
        if len(value.uses()) != 1 or value.is_graph_output():  # hls4ml moves a layer with one reader only
            settle(value)

    for node in model.graph:
        domain, op = canonical_domain(node.domain), node.op_type
        arrays = [constant_array(v) if v is not None else None for v in node.inputs]
        if domain == QONNX and op in ("Quant", "IntQuant") and len(arrays) >= 3:
            scale, zero_point = arrays[1], arrays[2]
            if scale is None or zero_point is None or plain_quantizer(np.asarray(scale), np.asarray(zero_point)):
                settle(node.inputs[0])
                continue
            scale, zero_point = np.asarray(scale, np.float64), np.asarray(zero_point, np.float64)
            if arrays[0] is None:  # q_scale (1/s, z) takes the scaling layer before it in
                before = take(node.inputs[0]) or _Pending(_ONE, _ZERO, ())
                inverse = Magnitudes.of(1 / scale)
                record(node.name, before.scale * inverse, before.bias * inverse + Magnitudes.of(zero_point))
            put(node.outputs[0], _Pending(Magnitudes.of(scale), Magnitudes.of(zero_point * scale), (node.name,)))
        elif domain == QONNX and op == "BipolarQuant" and len(arrays) >= 2:
            settle(node.inputs[0])
            if arrays[1] is not None and np.any(np.asarray(arrays[1]) != 1):
                put(node.outputs[0], _Pending(Magnitudes.of(arrays[1]), _ZERO, (node.name,)))
        elif domain in (STANDARD, CHANNELS_LAST) and op in ("MatMul", "Conv") and len(node.inputs) >= 2:
            _linear(node, arrays, take, put, record)
        elif (domain in (STANDARD, CHANNELS_LAST) and op in _CONFIGURED and node.name
              and (own := _own_constants(node, arrays)) is not None):
            data, own_scale, own_bias = own
            before = take(data) or _Pending(_ONE, _ZERO, ())
            record(node.name, own_scale * before.scale, own_scale * before.bias + own_bias)
        elif domain in (STANDARD, CHANNELS_LAST) and op == "Add" and len(node.inputs) == 2:
            ps = [take(v) for v in node.inputs]  # two scaling layers with one scale move below the Add
            if all(p is not None and p.bias.high == 0 and p.scale.uniform for p in ps) and ps[0].scale == ps[1].scale:
                put(node.outputs[0], _Pending(ps[0].scale, _ZERO, ps[0].names + ps[1].names))
            else:
                for p in ps:
                    for name in p.names if p is not None else ():
                        record(name, p.scale, p.bias)
        else:
            for value in node.inputs:
                settle(value)
    for p in list(pending.values()):
        for name in p.names:
            record(name, p.scale, p.bias)
    return carried


def _own_constants(node: ir.Node, arrays: list) -> tuple[ir.Value, Magnitudes, Magnitudes] | None:
    """(data input, scale, bias) of the scaling layer hls4ml makes of a BatchNormalization or of an
    Add/Sub/Mul/Div with one constant operand (the second, for a Div); None for other such nodes."""
    op = node.op_type
    if op == "BatchNormalization":
        if len(arrays) < 5 or any(a is None for a in arrays[1:5]) or arrays[0] is not None:
            return None
        gamma, beta, mean, var = (np.asarray(a, np.float64) for a in arrays[1:5])
        a = gamma / np.sqrt(var + node.attributes.get_float("epsilon", 1e-5))
        return node.inputs[0], Magnitudes.of(a), Magnitudes.of(beta - a * mean)
    if len(arrays) != 2 or (arrays[0] is None) == (arrays[1] is None) or (op == "Div" and arrays[1] is None):
        return None
    k = 0 if arrays[0] is not None else 1
    constant = np.asarray(arrays[k], np.float64)
    data = node.inputs[1 - k]
    if op in ("Add", "Sub"):
        return data, _ONE, Magnitudes.of(constant)
    if op == "Mul":
        return data, Magnitudes.of(constant), _ZERO
    return (data, Magnitudes.of(1 / constant), _ZERO) if np.all(constant != 0) else None


def _linear(node: ir.Node, arrays: list, take, put, record) -> None:
    """MatMul/Conv: the scaling layers of its data and weights move below it (``move_scales.py``) when hls4ml
    can: a bias of 0 and, for the data's, one scale for the tensor; a Conv's own bias b becomes the moved
    layer's bias b (1 - s), for per-tensor scales only."""
    data, weights = take(node.inputs[0]), take(node.inputs[1])
    bias = arrays[2] if len(arrays) > 2 and node.op_type == "Conv" else None
    has_bias = bias is not None and np.any(bias != 0)
    moving, staying = [], []
    for p, is_data in ((data, True), (weights, False)):
        if p is None:
            continue
        movable = p.bias.high == 0 and (p.scale.uniform or not is_data)
        (moving if movable else staying).append(p)
    if has_bias and not all(p.scale.uniform for p in moving):
        staying, moving = staying + moving, []
    for p in staying:
        for name in p.names:
            record(name, p.scale, p.bias)
    if not moving:
        return
    scale = _ONE
    for p in moving:
        scale = scale * p.scale
    moved_bias = _ZERO
    if has_bias:
        moved_bias = Magnitudes.of(np.asarray(bias, np.float64) * (1 - scale.high))
    put(node.outputs[0], _Pending(scale, moved_bias, tuple(n for p in moving for n in p.names)))


def constant_precision(magnitudes: Magnitudes, fractional_bits: int = FRACTIONAL_BITS) -> str:
    """``fixed<I + F, I>`` for constants of ``magnitudes``: I holds the largest, F gives the smallest nonzero
    one (at least 2^-SIGNIFICANT_BITS of the largest) SIGNIFICANT_BITS significant bits, F >= ``fractional_bits``."""
    bits = integer_bits(magnitudes.high)
    fraction = fractional_bits
    if magnitudes.high > 0:
        smallest = max(magnitudes.low, magnitudes.high * 2.0 ** -SIGNIFICANT_BITS)
        fraction = max(fractional_bits, SIGNIFICANT_BITS - 1 - math.floor(math.log2(smallest)))
    return f"fixed<{bits + fraction},{bits}>"


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
    for name, (scale, bias) in scaling_constants(model).items():
        layers.setdefault(name, {"Precision": {}})["Precision"].update(
            scale=constant_precision(scale, fractional_bits), bias=constant_precision(bias, fractional_bits))
    convolutional = any(node.op_type == "Conv" for node in model.graph)
    return {
        "Model": {"Precision": {"default": f"fixed<{widest + fractional_bits},{widest}>"}, "ReuseFactor": 1,
                  "Strategy": "Latency"},
        "LayerName": layers,
        # hls4ml's advice: streams for convolutional models (fully unrolled convolutions do not compile in
        # reasonable time: residual_shared_quant's 16x16x16 layers ran g++ for over 10 minutes at 5.7 GB)
        "IOType": "io_stream" if convolutional else "io_parallel",
    }
