"""fold-batchnorm-into-qdq: a QCDQ Conv -> BatchNormalization -> [Relu] -> QuantizeLinear becomes one
Conv with per-channel weight scales and an int32 bias, only where that provably gives the same codes.

Why: onnxruntime fuses DequantizeLinear -> Conv -> QuantizeLinear into QLinearConv only when the
Conv's bias is a DequantizeLinear of int32 at ``x_scale * w_scale``; a BatchNormalization in
between (CNV, MobileNet, ResNet-style Brevitas models) leaves every such Conv in float.

The rewrite, per output channel c, with input codes ``a`` (integers: the Conv's accumulator
``a = sum x_code * w_code``), gives weight codes ``f * w`` (an integer factor f >= 1, so codes
stay within ``activations_to_uint8.SAFE_WEIGHT_CODE``), weight scale ``s'``, and int32 bias
``B`` at scale ``x_scale * s'``. Its quantizer then computes ``round(M * (f*a + B))`` with
``M = x_scale * s' / y_scale`` where the original computed ``round(t*a + u)`` (t, u from the
scales, the Conv bias and the BatchNormalization). Both are clamped to the quantizer's range.

Exactness is proved, not hoped for: for every accumulator value the input and weight ranges
allow (padding counts as code 0), near enough to the quantizer's range to matter, the
original's code is computed in float64; B is tried near ``f*u/t`` and M is any value inside
the interval the codes allow (each code is a pair of linear constraints on M); the chosen
(M, B) keeps every value at least ``MARGIN`` steps away from a rounding boundary, so float32
evaluation order cannot flip a code. The check is repeated with the float32 scales written to
the file. A channel that cannot be proved (a reachable value on a rounding tie of the
original, a bias grid too coarse, an accumulator range above ``MAX_RANGE``) keeps the
layer in float, with the reason. Nothing else changes: a layer whose BatchNormalization output
has another reader, whose input or weights are not dequantized constants / clamped codes, or
whose weight zero point is not 0, or whose weight codes exceed +-64 (fused, onnxruntime's u8 x s8
kernels could saturate on x86 without VNNI, see activations_to_uint8), is left alone.

What differs from the original: nothing at the quantizer's output codes (proved); the float
value between Conv and QuantizeLinear is no longer computed (it was not an output).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qonnx_tools._ir import ir
from qonnx_tools.constants import constant_array, constant_scalar
from qonnx_tools.decline import Decline
from qonnx_tools.domains import STANDARD, canonical_domain
from qonnx_tools.graph_order import topological_order
from qonnx_tools.passes._codes import code_readers
from qonnx_tools.passes._rewrite import all_value_names, new_initializer, unique_name
from qonnx_tools.passes.activations_to_uint8 import SAFE_WEIGHT_CODE
from qonnx_tools.passes.base import PassResult, QonnxPass
from qonnx_tools.passes.move_into_integer_domain import is_op

#: distance (in output quantization steps) every proved value keeps from a rounding boundary
MARGIN = 1e-4
#: a value of the original this close (relative) to a rounding tie is a tie: float32 may round it either way
TIE = 1e-6
#: most accumulator values examined per channel (the proof is O(range) per channel)
MAX_RANGE = 1 << 16
#: bias integers tried on each side of the ideal one
_BIAS_CANDIDATES = np.arange(-3, 4)
#: ops between an activation's DequantizeLinear and the Conv that keep its set of values
_VALUE_PRESERVING = ("MaxPool", "Reshape", "Flatten", "Transpose", "Squeeze", "Unsqueeze", "Identity")
_INT32 = np.iinfo(np.int32)




@dataclass
class _Codes:
    """Integer codes of an activation relative to its zero point: [lo, hi], and its scale."""

    lo: int
    hi: int
    scale: float



def _input_codes(value: ir.Value) -> _Codes | Decline:
    """The code range of a Conv's data input: DequantizeLinear of QuantizeLinear [-> Clip] codes."""
    producer = value.producer()
    while producer is not None and producer.op_type in _VALUE_PRESERVING and canonical_domain(producer.domain) == STANDARD:
        producer = producer.inputs[0].producer() if producer.inputs and producer.inputs[0] is not None else None
    if not is_op(producer, "DequantizeLinear"):
        return Decline("the layer's input is not dequantized codes (bipolar activations, a float input)")
    scale, zp = constant_scalar(producer.inputs[1]), constant_scalar(producer.inputs[2]) if len(producer.inputs) > 2 else 0.0
    scales = constant_array(producer.inputs[1])
    if scales is not None and scales.size > 1:
        return Decline("the input is quantized per channel (onnxruntime's QLinearConv and QGemm take one input scale)", producer)
    if scale is None or zp is None:
        return Decline("the input's DequantizeLinear has no constant per-tensor scale and zero point", producer)
    codes = producer.inputs[0]
    source = codes.producer()
    # the codes' type is the zero point's (DequantizeLinear's rule); without one, uint8
    zp_array = constant_array(producer.inputs[2]) if len(producer.inputs) > 2 else np.zeros((), np.uint8)
    if zp_array is None or zp_array.dtype.kind not in "iu":
        return Decline("the input codes are not integers", producer)
    info = np.iinfo(zp_array.dtype)
    lo, hi = int(info.min), int(info.max)
    if is_op(source, "Clip"):
        c_lo, c_hi = constant_scalar(source.inputs[1]) if len(source.inputs) > 1 else None, \
            constant_scalar(source.inputs[2]) if len(source.inputs) > 2 else None
        if c_lo is None or c_hi is None:
            return Decline("a Clip on the input codes has no constant bounds", source)
        lo, hi = max(lo, int(c_lo)), min(hi, int(c_hi))
    zp = int(zp)
    # padding contributes the float 0, i.e. code zp (relative code 0): include it
    return _Codes(min(lo - zp, 0), max(hi - zp, 0), scale)


@dataclass
class _Layer:
    conv: ir.Node  # Conv, MatMul (2-D input) or Gemm
    bn: ir.Node
    w_dq: ir.Node
    axis: int  # the weight's output-channel axis (Conv 0; MatMul 1; Gemm 0 with transB, else 1)
    codes: np.ndarray  # int64 [C, ...]: channel-major
    w_scale: np.ndarray  # float64 [C]
    bias: np.ndarray  # float64 [C]
    x: _Codes
    factor: np.ndarray  # BatchNormalization gamma / sqrt(var + eps), float64 [C]
    shift: np.ndarray  # beta - mean * factor
    y_scale: float
    y_lo: int  # codes relative to the output zero point, after the Relu if any
    y_hi: int


def _match(bn: ir.Node) -> _Layer | Decline:
    if bn.attributes.get_int("training_mode", 0) or len(bn.outputs) != 1 or len(bn.inputs) != 5:
        return Decline("BatchNormalization in training mode")
    conv = bn.inputs[0].producer()
    axis = _channel_axis(conv)
    if isinstance(axis, Decline):
        return axis
    if len(conv.outputs[0].uses()) != 1 or conv.outputs[0].is_graph_output():
        return Decline(f"the {conv.op_type}'s output has other readers", conv)
    params = [constant_array(v) for v in bn.inputs[1:]]
    if any(p is None for p in params):
        return Decline("BatchNormalization parameters are not constant")
    gamma, beta, mean, var = (np.asarray(p, np.float64).reshape(-1) for p in params)
    eps = bn.attributes.get_float("epsilon", 1e-5)
    # the standard computes in the tensor's type: the factor as float32 would give it
    factor = gamma / np.sqrt(var + np.float64(np.float32(eps)))
    shift = beta - mean * factor

    w_dq = conv.inputs[1].producer() if len(conv.inputs) > 1 and conv.inputs[1] is not None else None
    if not is_op(w_dq, "DequantizeLinear") or len(conv.inputs[1].uses()) != 1:
        return Decline(f"the {conv.op_type}'s weight is not a DequantizeLinear read only by it", conv)
    codes = constant_array(w_dq.inputs[0])
    w_scale = constant_array(w_dq.inputs[1])
    w_zp = constant_array(w_dq.inputs[2]) if len(w_dq.inputs) > 2 else np.zeros(1, np.int8)
    if codes is None or w_scale is None or w_zp is None or codes.dtype.kind not in "iu":
        return Decline("the weight is not integer codes with constant scale and zero point", w_dq)
    if np.any(w_zp != 0):
        return Decline("the weight zero point is not 0", w_dq)
    if codes.size and int(np.abs(codes.astype(np.int64)).max()) > SAFE_WEIGHT_CODE:
        # fused, such a layer would run onnxruntime's u8 x s8 kernel, which saturates on x86 without VNNI
        return Decline(f"weight codes beyond +-{SAFE_WEIGHT_CODE} (onnxruntime's u8 x s8 kernels saturate int16 "
                       "pair sums on x86 without VNNI): left in float", w_dq)
    if axis >= codes.ndim:
        return Decline("the weight has too few dimensions", w_dq)
    channels = codes.shape[axis]
    if w_scale.size not in (1, channels) or (w_scale.size > 1 and w_dq.attributes.get_int("axis", 1) % codes.ndim != axis):
        return Decline("the weight scale is neither per-tensor nor per output channel", w_dq)
    codes = np.moveaxis(codes, axis, 0)
    if gamma.size != channels:
        return Decline(f"BatchNormalization channels differ from the {conv.op_type}'s")
    bias = np.zeros(channels)
    if len(conv.inputs) > 2 and conv.inputs[2] is not None:
        b = _float_constant(conv.inputs[2])
        if b is None:
            return Decline(f"the {conv.op_type}'s bias is not constant", conv)
        bias = b.astype(np.float64).reshape(-1)

    x = _input_codes(conv.inputs[0])
    if isinstance(x, Decline):
        return Decline(x.reason, conv, *x.where)
    out = _output_quantizer(bn.outputs[0])
    if isinstance(out, Decline):
        return out
    y_scale, y_lo, y_hi = out
    return _Layer(conv, bn, w_dq, axis, codes.astype(np.int64), np.broadcast_to(w_scale.astype(np.float64).reshape(-1), (channels,)),
                  bias, x, factor, shift, y_scale, y_lo, y_hi)


def _channel_axis(layer: ir.Node | None) -> int | Decline:
    """The weight axis of ``layer``'s output channels (the BatchNormalization's channel axis 1), or why
    the layer is not one this pass folds into."""
    if is_op(layer, "Conv"):
        return 0
    if is_op(layer, "MatMul"):
        shape = layer.inputs[0].shape if layer.inputs[0] is not None else None
        if shape is None or len(shape) != 2:
            return Decline("BatchNormalization follows a MatMul whose input is not known to be 2-D", layer)
        return 1
    if is_op(layer, "Gemm"):
        if (layer.attributes.get_int("transA", 0) or layer.attributes.get_float("alpha", 1.0) != 1.0
                or layer.attributes.get_float("beta", 1.0) != 1.0):
            return Decline("BatchNormalization follows a Gemm with transA, alpha or beta", layer)
        return 0 if layer.attributes.get_int("transB", 0) else 1
    return Decline("BatchNormalization does not follow a Conv, MatMul or Gemm")


def _float_constant(value: ir.Value) -> np.ndarray | None:
    """A constant float tensor, or the value of DequantizeLinear(constant codes, scale, zp) per-tensor/axis 0."""
    array = constant_array(value)
    if array is not None:
        return array if array.dtype.kind == "f" else None
    dq = value.producer()
    if not is_op(dq, "DequantizeLinear"):
        return None
    codes, scale = constant_array(dq.inputs[0]), constant_array(dq.inputs[1])
    zp = constant_array(dq.inputs[2]) if len(dq.inputs) > 2 else np.zeros(1)
    if codes is None or scale is None or zp is None or codes.ndim != 1:
        return None
    return (codes.astype(np.float64) - zp.astype(np.float64)) * scale.astype(np.float64)


def _output_quantizer(value: ir.Value) -> tuple[float, int, int] | Decline:
    """(scale, lo, hi) of the QuantizeLinear a BatchNormalization output feeds (through one Relu)."""
    relu = False
    uses = value.uses()
    if value.is_graph_output() or len(uses) != 1:
        return Decline("the BatchNormalization output has other readers than one quantizer")
    user = uses[0][0]
    if is_op(user, "Relu"):
        relu = True
        value = user.outputs[0]
        uses = value.uses()
        if value.is_graph_output() or len(uses) != 1:
            return Decline("the Relu output has other readers than one quantizer", user)
        user = uses[0][0]
    if not is_op(user, "QuantizeLinear") or uses[0][1] != 0:
        return Decline("the BatchNormalization output does not feed a QuantizeLinear")
    scale = constant_scalar(user.inputs[1])
    scales = constant_array(user.inputs[1])
    if scales is not None and scales.size > 1:
        return Decline("the output quantizer is per channel (onnxruntime's QLinearConv and QGemm take one output scale)", user)
    zp_array = constant_array(user.inputs[2]) if len(user.inputs) > 2 else None
    if scale is None or zp_array is None or zp_array.size != 1 or zp_array.dtype.kind not in "iu":
        return Decline("the output quantizer has no constant per-tensor scale and integer zero point", user)
    if user.attributes.get_int("saturate", 1) == 0:
        return Decline("the output quantizer does not saturate", user)
    readers = code_readers(user)  # the widest range a reader sees: every code in it must stay
    if isinstance(readers, Decline):
        return readers
    zp = int(zp_array.reshape(-1)[0])
    lo, hi = readers.lo - zp, readers.hi - zp
    if relu:  # Relu(y) then quantize: codes below the zero point become the zero point's
        lo = max(lo, 0)
    if lo > hi:
        return Decline("the output codes' range is empty", user)
    return scale, lo, hi


def _round(values: np.ndarray) -> np.ndarray:
    return np.round(values)  # half to even, as QuantizeLinear


@dataclass
class _Channel:
    factor: int  # f
    bias: int  # B
    slope: float  # M


@dataclass
class _Window:
    """Output channel c of a layer in output-step units: the original computes ``round(t * a + u)`` from
    the accumulator ``a``; ``a0..a1`` are the reachable accumulators whose value lands within one step
    of the output range (below and above it the code is clamped, and the slope's sign keeps the order);
    ``a1 < a0`` when every reachable value is clamped to one end, then ``reach`` is the reachable range."""

    t: float
    u: float
    a0: int
    a1: int
    reach: tuple[int, int]


def _window(layer: _Layer, c: int) -> _Window:
    t = layer.x.scale * layer.w_scale[c] * layer.factor[c] / layer.y_scale
    u = (layer.bias[c] * layer.factor[c] + layer.shift[c]) / layer.y_scale
    w = layer.codes[c].reshape(-1)
    a_min = int(np.sum(np.minimum(w * layer.x.lo, w * layer.x.hi)))
    a_max = int(np.sum(np.maximum(w * layer.x.lo, w * layer.x.hi)))
    if t == 0.0:
        return _Window(t, u, a_min, a_max, (a_min, a_max))
    ends = sorted(((layer.y_lo - 1 - u) / t, (layer.y_hi + 1 - u) / t))
    return _Window(t, u, max(a_min, int(np.floor(ends[0]))), min(a_max, int(np.ceil(ends[1]))), (a_min, a_max))


def _prove_channel(layer: _Layer, c: int) -> _Channel | str:
    """(f, B, M) for output channel c with the same codes as the original for every reachable
    accumulator value, or why none was found."""
    win = _window(layer, c)
    t, u, a0, a1 = win.t, win.u, win.a0, win.a1
    lo, hi = layer.y_lo, layer.y_hi
    if t == 0.0:
        return "the BatchNormalization scales it by 0"
    max_code = int(np.max(np.abs(layer.codes[c]))) if layer.codes[c].size else 0
    f = f_max = max(1, SAFE_WEIGHT_CODE // max(1, max_code))
    if a1 < a0:  # every reachable value is clamped to one end: any B in range with the same slope
        return _Channel(f, int(np.clip(np.round(f * u / t), -2**24, 2**24)), t / f)
    if a1 - a0 + 1 > MAX_RANGE:
        return f"its accumulator range ({a1 - a0 + 1} values near the output range) is above {MAX_RANGE}"
    a = np.arange(a0, a1 + 1, dtype=np.float64)
    phi = t * a + u
    decided = (phi > lo) & (phi < hi)  # only the boundaries lo+0.5 .. hi-0.5 separate clamped codes
    if np.any(decided & (np.abs(phi - np.floor(phi) - 0.5) < TIE * np.maximum(1.0, np.abs(phi)))):
        return "a reachable value of the original lies on a rounding tie"
    q = np.clip(_round(phi), lo, hi)
    below, above = _margins(phi, q)
    lower = np.where(q <= lo, -np.inf, q - 0.5 + below)
    upper = np.where(q >= hi, np.inf, q + 0.5 - above)
    for f in range(f, 0, -1):  # the finest grid first; a coarser one can still hold a fitting bias
        for b in np.round(f * u / t) + _BIAS_CANDIDATES:
            if not _INT32.min <= b <= _INT32.max:
                continue
            z = f * a + b
            if np.any((z == 0) & ((lower > 0) | (upper < 0))):
                continue
            with np.errstate(divide="ignore", invalid="ignore"):
                m_lo = np.where(z > 0, lower / z, np.where(z < 0, upper / z, -np.inf)).max()
                m_hi = np.where(z > 0, upper / z, np.where(z < 0, lower / z, np.inf)).min()
            if not m_lo < m_hi:
                continue
            slope = _inside(m_lo, m_hi, t / f)
            if slope is not None:
                return _Channel(f, int(b), slope)
    return f"no int32 bias on the accumulator grid gives the same codes (weight codes allow at most a x{f_max} finer grid)"


def _inside(m_lo: float, m_hi: float, ideal: float) -> float | None:
    """A non-zero slope strictly inside (m_lo, m_hi): the middle when both are finite, else the
    original's slope when inside, else a point beyond the finite end; None when there is none."""
    if np.isfinite(m_lo) and np.isfinite(m_hi):
        candidates = [(m_lo + m_hi) / 2]
    else:
        candidates = [ideal] + [x * k for x in (m_lo, m_hi) if np.isfinite(x) and x != 0 for k in (2.0, 0.5)]
    return next((float(c) for c in candidates if m_lo < c < m_hi and c != 0), None)


def _margins(phi: np.ndarray, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """How far below / above a folded value may come to the boundaries of the code q: MARGIN, or
    half the original's own distance when that is smaller (the folded graph is then as far from
    flipping as the original is, within a factor of two)."""
    return (np.minimum(MARGIN, np.maximum(phi - (q - 0.5), 0) / 2),
            np.minimum(MARGIN, np.maximum((q + 0.5) - phi, 0) / 2))


def _check_written(layer: _Layer, c: int, g: int, w_scale: np.float32, bias_code: int, bias_scale: np.float32) -> bool:
    """Re-prove channel c with what the file holds: weight codes ``g * w`` (g = +-f), float32 scales."""
    win = _window(layer, c)
    t, u, lo, hi = win.t, win.u, layer.y_lo, layer.y_hi
    a = (np.array(win.reach, np.float64) if win.a1 < win.a0
         else np.arange(win.a0, win.a1 + 1, dtype=np.float64))
    phi = t * a + u
    original = np.clip(_round(phi), lo, hi)
    new = (layer.x.scale * float(w_scale) * g * a + bias_code * float(bias_scale)) / layer.y_scale
    if not np.array_equal(np.clip(_round(new), lo, hi), original):
        return False
    below, above = _margins(phi, original)  # half of what the proof kept: float32 scales moved it a little
    too_low = (original > lo) & (new - (original - 0.5) < below / 2)
    too_high = (original < hi) & ((original + 0.5) - new < above / 2)
    return not np.any(too_low | too_high)


@dataclass
class FoldBatchnormIntoQdq(QonnxPass, name="fold-batchnorm-into-qdq"):
    """QCDQ Conv -> BatchNormalization -> [Relu] -> QuantizeLinear: BatchNormalization folded into
    per-channel weight scales and an int32 bias where every reachable output code is proved unchanged"""

    def call(self, model: ir.Model) -> PassResult:
        used = all_value_names(model)
        modified = False
        opset = model.opset_imports.get("", model.opset_imports.get("ai.onnx", 0))
        for bn in [n for n in topological_order(model.graph) if is_op(n, "BatchNormalization")]:
            if opset < 13:  # the folded weight and bias are per channel
                self.decline(Decline(f"per-channel DequantizeLinear needs ai.onnx opset 13 (the model has {opset}; "
                                     "convert with --opset 13)"), bn)
                continue
            layer = _match(bn)
            if isinstance(layer, Decline):
                self.decline(layer, bn)
                continue
            outcome = _fold(layer, used)
            if isinstance(outcome, Decline):
                self.decline(outcome, layer.conv)
            else:
                modified = True
        return PassResult(model, modified)


def _fold(layer: _Layer, used: set[str]) -> Decline | None:
    channels = layer.codes.shape[0]
    proofs: list[_Channel] = []
    failed: dict[str, int] = {}
    for c in range(channels):
        proof = _prove_channel(layer, c)
        if isinstance(proof, str):
            failed[proof] = failed.get(proof, 0) + 1
        else:
            proofs.append(proof)
    if failed:
        reason, count = max(failed.items(), key=lambda kv: kv[1])
        return Decline(f"{sum(failed.values())} of {channels} channels not provably exact ({reason})")
    sign = np.array([1 if p.slope > 0 else -1 for p in proofs], dtype=np.int64)
    f = np.array([p.factor for p in proofs], dtype=np.int64)
    shape = (channels,) + (1,) * (layer.codes.ndim - 1)
    codes = layer.codes * (f * sign).reshape(shape)
    w_scale = (np.abs([p.slope for p in proofs]) * layer.y_scale / layer.x.scale).astype(np.float32)
    bias_codes = np.array([p.bias for p in proofs], dtype=np.int64) * sign
    x_scale = np.float32(layer.x.scale)
    bias_scale = (x_scale * w_scale).astype(np.float32)
    for c in range(channels):
        if not _check_written(layer, c, int(f[c] * sign[c]), w_scale[c], int(bias_codes[c]), bias_scale[c]):
            return Decline("the float32 scales lose the proof on some channel")
    dtype = np.int8 if codes.min() >= -128 and codes.max() <= 127 else None
    if dtype is None:
        return Decline("weight codes leave int8")
    _write(layer, codes.astype(np.int8), w_scale, bias_codes.astype(np.int32), bias_scale, used)
    return None


def _write(layer: _Layer, codes: np.ndarray, w_scale: np.ndarray, bias_codes: np.ndarray,
           bias_scale: np.ndarray, used: set[str]) -> None:
    conv, bn, graph = layer.conv, layer.bn, layer.conv.graph
    base = conv.name or "conv"
    channels = codes.shape[0]
    codes = np.ascontiguousarray(np.moveaxis(codes, 0, layer.axis))
    w_codes = new_initializer(graph, codes, unique_name(f"{base}_w_codes", used))
    w_s = new_initializer(graph, w_scale, unique_name(f"{base}_w_scale", used))
    w_zp = new_initializer(graph, np.zeros(channels, np.int8), unique_name(f"{base}_w_zp", used))
    b_codes = new_initializer(graph, bias_codes, unique_name(f"{base}_b_codes", used))
    b_s = new_initializer(graph, bias_scale, unique_name(f"{base}_b_scale", used))
    b_zp = new_initializer(graph, np.zeros(channels, np.int32), unique_name(f"{base}_b_zp", used))
    w_out = ir.Value(name=unique_name(f"{base}_w", used), type=ir.TensorType(ir.DataType.FLOAT),
                     shape=ir.Shape(codes.shape))
    b_out = ir.Value(name=unique_name(f"{base}_b", used), type=ir.TensorType(ir.DataType.FLOAT),
                     shape=ir.Shape((channels,)))
    w_dq = ir.Node("", "DequantizeLinear", [w_codes, w_s, w_zp], attributes=[ir.AttrInt64("axis", layer.axis)],
                   outputs=[w_out], name=unique_name(f"{base}_w_dq", used))
    b_dq = ir.Node("", "DequantizeLinear", [b_codes, b_s, b_zp], attributes=[ir.AttrInt64("axis", 0)],
                   outputs=[b_out], name=unique_name(f"{base}_b_dq", used))
    graph.insert_before(conv, [w_dq, b_dq])
    if conv.op_type == "MatMul":  # a bias needs Gemm (the input is 2-D, checked): A x B + C
        gemm = ir.Node("", "Gemm", list(conv.inputs), name=conv.name, num_outputs=1)
        graph.insert_before(conv, gemm)
        old_out = conv.outputs[0]
        old_out.replace_all_uses_with(gemm.outputs[0])
        gemm.outputs[0].type, gemm.outputs[0].shape = old_out.type, old_out.shape
        graph.remove(conv, safe=True)
        conv = gemm
    old_weight = conv.inputs[1]
    old_bias = conv.inputs[2] if len(conv.inputs) > 2 else None
    conv.replace_input_with(1, w_out)
    if old_bias is None:
        conv.resize_inputs(3)
    conv.replace_input_with(2, b_out)
    # the Conv now computes the BatchNormalization's output: its readers read the Conv
    bn_out, conv_out = bn.outputs[0], conv.outputs[0]
    bn_out.replace_all_uses_with(conv_out)
    if bn_out.is_graph_output():  # excluded by _match; kept for safety of later edits
        raise AssertionError("BatchNormalization output is a graph output")
    graph.remove(bn, safe=True)
    _drop_chain(old_weight)
    if old_bias is not None:
        _drop_chain(old_bias)


def _drop_chain(value: ir.Value) -> None:
    """Remove a constant-fed DequantizeLinear (or initializer) nobody reads any more."""
    from qonnx_tools.passes._rewrite import drop_if_unused

    if value.uses() or value.is_graph_output():
        return
    producer = value.producer()
    if producer is not None and producer.graph is not None:
        inputs = list(producer.inputs)
        producer.graph.remove(producer, safe=True)
        for v in inputs:
            if v is not None:
                drop_if_unused(v)
    else:
        drop_if_unused(value)
