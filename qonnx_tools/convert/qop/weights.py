"""Phase 3 of ``to_qop``: one layer's 8-bit weight constant, its scales and zero points, and its int32 bias.

``plan_weights(conv, layer)`` folds Gemm ``alpha`` and a BatchNormalization into the
weight scales (negative factors negate the weight integers), puts the bias at scale
``x_scale * w_scale`` (reused when already there, else requantized and reported in the
notes; with ``requantize_bias=False`` an inexact bias is a Decline), multiplies the
weight integers of each channel up when that makes the bias grid finer (exactly: the
scale is divided by the same factor), and picks the int8/uint8 container.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qonnx_tools.convert import REQUANTIZE_BIAS_FLAG
from qonnx_tools.convert.qop.match import Layer
from qonnx_tools.convert.qop.state import Conversion
from qonnx_tools.decline import Decline
from qonnx_tools.executor.kernels.quantize_linear import int_range
from qonnx_tools.passes.move_into_integer_domain import INT8, UINT8

_INT32_MAX = 2**31 - 1
#: Weight integers are multiplied up to this magnitude only (see _upscale_factors).
_UPSCALE_LIMIT = 63
#: A requantized bias counts as exact when every value is within this fraction of an accumulator step.
_EXACT_BIAS_TOL = 1e-3


@dataclass
class WeightPlan:
    """Final 8-bit weight, its scale and zero point, and the int32 bias (QLinear path)."""

    w: np.ndarray
    scale: np.ndarray  # float64, () or [C]
    zero: np.ndarray  # int64, () or [C]
    dtype: np.dtype
    bias: np.ndarray | None = None  # int32 [C]
    factor: np.ndarray | None = None  # float64 [C]: BatchNormalization factor (applies to the bias too)
    shift: np.ndarray | None = None  # float64 [C]: BatchNormalization shift (epilogue path adds it in float)


def _fits(values: np.ndarray, dtype: np.dtype) -> bool:
    lo, hi = int_range(dtype)
    return values.size == 0 or (int(values.min()) >= lo and int(values.max()) <= hi)


def plan_weights(conv: Conversion, layer: Layer) -> WeightPlan:
    """Fold alpha / BatchNormalization into the weight scales, requantize the bias, pick the 8-bit container."""
    w = layer.w.copy()
    c = layer.channels
    ch_axis = 0 if layer.kind == "conv" else w.ndim - 1
    shape = [1] * w.ndim
    shape[ch_axis] = c
    scale = layer.w_scale.astype(np.float64)
    zero = layer.w_zero.astype(np.int64)
    bn_factor = np.ones(c)
    shift = np.zeros(c)
    if layer.alpha == 0.0:
        raise Decline("Gemm alpha = 0")
    if layer.bn is not None:
        if layer.bn[0].shape != (c,):
            raise Decline("BatchNormalization after the layer has another channel count than the layer",
                          f"BatchNormalization {layer.bn_name!r}: {layer.bn[0].size} channels, the layer {c}")
        bn_factor = layer.bn[0]
        shift = layer.bn[1]
    factor = bn_factor * layer.alpha  # on the product; the bias only meets beta and the BatchNormalization
    if layer.bn is not None or layer.alpha != 1.0:
        scale = np.broadcast_to(scale, (c,)) * np.abs(factor)
        zero = np.broadcast_to(zero, (c,)).copy()
        negative = factor < 0
        if np.any(negative):  # (w - zp) * s * f == ((2 zp - w) - zp) * s * |f|
            w = np.where(negative.reshape(shape), 2 * zero.reshape(shape if zero.size > 1 else ()) - w, w)
    bias = None
    if not layer.epilogue and layer.has_bias:
        if layer.has_bias and layer.kind == "dense" and w.ndim != 2:
            raise Decline("a bias on a MatMul with a weight that is not 2-D is not supported")
        bias, info = _requantize_bias(layer, scale, bn_factor, shift)
        if not info["exact"] and np.all(zero == 0):
            k = _upscale_factors(w, ch_axis, c)
            if scale.size == 1:
                # a per-tensor weight scale stays per-tensor: per-channel scales the source does not
                # have are a form some runtimes refuse (OpenVINO: scale_dim.compatible), so one k for all
                k = np.full_like(k, k.min())
            if np.any(k > 1):
                w = w * k.reshape(shape)
                if scale.size == 1:
                    scale = scale / k[0]
                else:
                    scale = np.broadcast_to(scale, (c,)) / k
                    zero = np.broadcast_to(zero, (c,)).copy()
                bias, info = _requantize_bias(layer, scale, bn_factor, shift)
                info["upscaled"] = k
        _report_bias(conv, layer, info)
    if _fits(w, INT8) and _fits(zero, INT8):
        wdt = INT8
    elif layer.xq.dtype != INT8 and _fits(w, UINT8) and _fits(zero, UINT8):
        wdt = UINT8
    elif _fits(w - 128, INT8) and _fits(zero - 128, INT8):
        w, zero, wdt = w - 128, zero - 128, INT8
    else:
        raise Decline("weight integers do not fit an 8-bit container (QLinearConv/QLinearMatMul need int8/uint8)")
    if scale.size > 1 or zero.size > 1:
        scale, zero = np.broadcast_to(scale, (c,)).copy(), np.broadcast_to(zero, (c,)).copy()
    return WeightPlan(w.astype(wdt), scale, zero, wdt, bias, bn_factor, shift)


def _upscale_factors(w: np.ndarray, ch_axis: int, c: int) -> np.ndarray:
    """Per-channel integers k with k * w still 8-bit and the int32 accumulator safe (w * k, scale / k: exact)."""
    other = tuple(a for a in range(w.ndim) if a != ch_axis)
    peak = np.abs(w).max(axis=other) if other else np.abs(w)
    fan_in = max(1, w.size // c)
    x_span = 255
    with np.errstate(divide="ignore"):
        # 7 bits (|k w| <= 63): onnxruntime's x86 u8s8 kernels without VNNI add pairs of products in
        # saturating int16 (255 * 64 * 2 < 2^15), the reason for its own "reduce_range" option
        k = np.where(peak > 0, _UPSCALE_LIMIT // np.maximum(peak, 1), 1)
        k = np.minimum(k, np.maximum(1, _INT32_MAX // np.maximum(1, peak * fan_in * x_span)))
    return np.maximum(k, 1).astype(np.int64)


def _requantize_bias(layer: Layer, scale: np.ndarray, factor: np.ndarray, shift: np.ndarray):
    """int32 bias at scale x_scale * w_scale (float32 product, as the kernels use it) and how far it moved."""
    c = factor.size
    s_x32 = np.float32(layer.xq.scale.reshape(()))
    acc32 = (s_x32 * np.broadcast_to(scale, (c,)).astype(np.float32)).astype(np.float32)
    untouched = layer.bn is None and layer.alpha == 1.0 and layer.beta == 1.0
    if layer.bias_int is not None and untouched and np.array_equal(layer.bias_scale, acc32):
        if np.abs(layer.bias_int).max(initial=0) > _INT32_MAX:
            raise Decline("bias integers do not fit int32")
        return layer.bias_int.astype(np.int32), {"exact": True, "reused": True}
    if layer.bias_int is not None:
        real = layer.bias_int.astype(np.float64) * layer.bias_scale.astype(np.float64)
    elif layer.bias_float is not None:
        real = layer.bias_float.astype(np.float64)
    else:
        real = np.zeros(c)
    real = real * layer.beta * factor + shift
    acc = acc32.astype(np.float64)
    ratio = real / acc
    rounded = np.rint(ratio)
    if np.abs(rounded).max(initial=0) > _INT32_MAX:
        raise Decline("bias does not fit int32 at scale x_scale * w_scale")
    change = float(np.abs(rounded * acc - real).max(initial=0))
    exact = float(np.abs(ratio - rounded).max(initial=0)) <= _EXACT_BIAS_TOL
    return rounded.astype(np.int32), {"exact": exact, "change": change}


#: How a bias that int32 at x_scale * w_scale cannot hold exactly is declined (the rewrite then keeps it in
#: float after an integer op, or refuses the layer).
INEXACT_BIAS = "bias is not exactly representable at scale x_scale * w_scale"


def _report_bias(conv: Conversion, layer: Layer, info: dict) -> None:
    if info.get("reused"):
        return
    name = layer.node.name or layer.node.op_type
    why = [layer.bias_desc] if layer.bias_desc else []
    if layer.bn is not None:
        why.append(f"BatchNormalization {layer.bn_name!r} folded into per-channel weight scales")
    if layer.alpha != 1.0 or layer.beta != 1.0:
        why.append(f"alpha={layer.alpha:g}, beta={layer.beta:g}")
    if layer.depthwise_input_scales:
        why.append("per-channel input scales folded into the weight scales")
    reason = "; ".join(why)
    change = info["change"]
    steps = change / float(layer.yq.scale.reshape(()))
    k = info.get("upscaled")
    upscaled = ""
    if k is not None:
        upscaled = (
            f"; weight integers multiplied by {int(k.min())}..{int(k.max())} per channel (scale divided: "
            "exact) for a finer bias grid"
        )
    if not info["exact"] and not conv.requantize_bias and layer.bn is None:  # --fold-batchnorm requantizes
        raise Decline(
            f"{INEXACT_BIAS} ({_bias_kinds(layer)}); {REQUANTIZE_BIAS_FLAG} rounds it to int32 at that scale",
            f"{reason}; requantizing changes it by up to {change:.3g} ({steps:.3g} output steps)",
        )
    if info["exact"]:
        conv.notes.append(f"{name}: bias re-expressed exactly at scale x_scale * w_scale ({reason}{upscaled})")
    else:
        conv.notes.append(
            f"{name}: bias requantized to int32 at scale x_scale * w_scale ({reason}{upscaled}); max change "
            f"{change:.3g} in output units = {steps:.3g} output quantization steps"
        )


def _bias_kinds(layer: Layer) -> str:
    """Why the bias needs requantizing, without names or numbers (equal reasons group in reports)."""
    kinds = []
    if layer.bias_int is not None:
        kinds.append("quantized bias")
    elif layer.bias_float is not None:
        kinds.append("float bias")
    if layer.bn is not None:
        kinds.append("BatchNormalization folded")
    if layer.alpha != 1.0 or layer.beta != 1.0:
        kinds.append("Gemm alpha/beta")
    if layer.depthwise_input_scales:
        kinds.append("per-channel input scales folded")
    return ", ".join(kinds) or "bias"
