"""Linear (de)quantization: QuantizeLinear, DequantizeLinear, DynamicQuantizeLinear, QLinearConv, QLinearMatMul.

Containers: int8/uint8/int16/uint16/int32 and, through ml_dtypes, int4/uint4/int2/uint2 and the
float8/float6/float4 formats. Quantization rounds half to even and saturates.

QLinearConv/QLinearMatMul accumulate exactly (int64, or float64 BLAS when provably exact;
int32 bias included), then requantize
like onnxruntime's MLAS: multiplier = (x_scale * w_scale) / y_scale evaluated in float32,
y = saturate(round_half_even(float32(acc) * multiplier) + y_zero_point), the product in float32.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np

from qonnx_tools._ir import ir
from qonnx_tools.errors import InvalidAttributeError
from qonnx_tools.executor.kernels._spatial import geometry, integer_conv, integer_matmul
from qonnx_tools.executor.registry import NodeContext, register

_ML_INTS = {np.dtype(t) for t in (ml_dtypes.int4, ml_dtypes.uint4, ml_dtypes.int2, ml_dtypes.uint2)}
_NO_INF_NAN = {np.dtype(t) for t in (ml_dtypes.float4_e2m1fn, ml_dtypes.float6_e2m3fn, ml_dtypes.float6_e3m2fn)}


def onnx_dtype(code: int) -> np.dtype:
    """NumPy/ml_dtypes dtype of an ONNX TensorProto data type code."""
    return np.dtype(ir.DataType(int(code)).numpy())


def int_range(dtype: np.dtype) -> tuple[int, int] | None:
    """(min, max) of an integer container (incl. 4-/2-bit), None for float containers."""
    dtype = np.dtype(dtype)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
    elif dtype in _ML_INTS:
        info = ml_dtypes.iinfo(dtype)
    else:
        return None
    return int(info.min), int(info.max)


def as_numbers(a: np.ndarray) -> np.ndarray:
    """Integer containers as int64, float containers as float32 (exact for every format used here)."""
    a = np.asarray(a)
    return a.astype(np.int64) if int_range(a.dtype) is not None else a.astype(np.float32)


def broadcast_param(p: np.ndarray, shape: tuple[int, ...], axis: int, block_size: int) -> np.ndarray:
    """Scale/zero point broadcastable to ``shape``: per-tensor, per-axis or blocked along ``axis``."""
    p = np.asarray(p)
    if block_size > 0:
        if p.ndim != len(shape):
            raise InvalidAttributeError(f"blocked quantization: parameter rank {p.ndim} != input rank {len(shape)}")
        return np.repeat(p, block_size, axis=axis).take(np.arange(shape[axis]), axis=axis)
    if p.size == 1:
        return p.reshape(())
    if p.ndim != 1 or p.shape[0] != shape[axis]:
        raise InvalidAttributeError(f"per-axis parameter of shape {p.shape} does not match axis {axis} of {shape}")
    target = [1] * len(shape)
    target[axis] = -1
    return p.reshape(target)


def param_axis(ctx: NodeContext, ndim: int) -> int:
    """The node's normalised ``axis`` (default 1)."""
    axis = int(ctx.attr("axis", 1))
    return axis + ndim if axis < 0 else axis


def saturate_float(v: np.ndarray, dtype: np.dtype, saturate: bool) -> np.ndarray:
    """Cast to a float8/6/4 container, clipping to +-max when saturating (always for formats without inf/NaN)."""
    info = ml_dtypes.finfo(dtype)
    if saturate or dtype in _NO_INF_NAN:
        v = np.clip(v, -float(info.max), float(info.max))
    return v.astype(dtype)


def division_dtype(ctx: NodeContext, scale: np.ndarray) -> np.dtype:
    """Precision of x / y_scale: the ``precision`` attribute, else the scale's float type, else float32."""
    if ctx.attr("precision", 0):
        return onnx_dtype(ctx.attr("precision"))
    dtype = np.dtype(scale.dtype)
    if dtype in (np.float16, np.float32, np.float64, np.dtype(ml_dtypes.bfloat16)):
        return dtype
    return np.dtype(np.float32)


def quantize(v: np.ndarray, zp: np.ndarray | int, dtype: np.dtype) -> np.ndarray:
    """saturate(round_half_even(v) + zp) into integer container ``dtype``."""
    lo, hi = int_range(dtype)
    v = np.asarray(v)
    if v.dtype == np.float32 and max(abs(lo), abs(hi)) <= 2**16:
        # float32 is exact here: rint(v) is an integer float32, and where |rint(v) + zp|
        # exceeds 2**24 (inexact) the clip to a 16-bit range saturates it anyway
        q = np.rint(v)
        q += np.asarray(zp, dtype=np.float32)
        np.clip(q, lo, hi, out=q)
        return q.astype(dtype)
    q = np.rint(np.asarray(v, dtype=np.float64)) + zp
    return np.clip(q, lo, hi).astype(dtype)


@register("QuantizeLinear", since=10)
def quantize_linear(ctx: NodeContext, x: np.ndarray, scale: np.ndarray, zp: np.ndarray | None = None) -> np.ndarray:
    """y = saturate(round(x / y_scale) + y_zero_point), per tensor, per axis or blocked."""
    if ctx.attr("output_dtype", 0):
        out = onnx_dtype(ctx.attr("output_dtype"))
    else:
        out = np.dtype(zp.dtype) if zp is not None else np.dtype(np.uint8)
    axis, block = param_axis(ctx, x.ndim), int(ctx.attr("block_size", 0))
    prec = division_dtype(ctx, scale)
    s = broadcast_param(scale, x.shape, axis, block).astype(prec)
    v = x.astype(prec) / s
    z = 0 if zp is None else as_numbers(broadcast_param(zp, x.shape, axis, block))
    if int_range(out) is not None:
        return quantize(v, z, out)
    return saturate_float(v.astype(np.float32) + z, out, bool(ctx.attr("saturate", 1)))


@register("DequantizeLinear", since=10)
def dequantize_linear(ctx: NodeContext, x: np.ndarray, scale: np.ndarray, zp: np.ndarray | None = None) -> np.ndarray:
    """y = (x - x_zero_point) * x_scale, computed in float32 (float64 for double) and cast once."""
    if ctx.attr("output_dtype", 0):
        out = onnx_dtype(ctx.attr("output_dtype"))
    elif np.dtype(scale.dtype) == np.dtype(ml_dtypes.float8_e8m0fnu):
        out = np.dtype(np.float32)
    else:
        out = np.dtype(scale.dtype)
    acc = np.dtype(np.float64) if out == np.float64 else np.dtype(np.float32)
    axis, block = param_axis(ctx, x.ndim), int(ctx.attr("block_size", 0))
    centred = as_numbers(x)
    if zp is not None:
        centred = centred - as_numbers(broadcast_param(zp, x.shape, axis, block))
    s = broadcast_param(scale, x.shape, axis, block).astype(acc)
    return (centred.astype(acc) * s).astype(out)


@register("DynamicQuantizeLinear", since=11)
def dynamic_quantize_linear(ctx: NodeContext, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """uint8 quantization with scale/zero point from the data range (widened to include 0)."""
    xf = x.astype(np.float32, copy=False)
    lo = np.float32(min(0.0, float(xf.min()))) if xf.size else np.float32(0)
    hi = np.float32(max(0.0, float(xf.max()))) if xf.size else np.float32(0)
    scale = np.float32((hi - lo) / np.float32(255)) if hi != lo else np.float32(1)
    zp = np.uint8(np.rint(np.clip(np.float32(0) - lo / scale, 0, 255)))
    y = quantize(xf / scale, int(zp), np.dtype(np.uint8))
    return y, np.asarray(scale, dtype=np.float32), np.asarray(zp, dtype=np.uint8)


def requantize(acc: np.ndarray, multiplier: np.ndarray, zp: np.ndarray) -> np.ndarray:
    """saturate(round_half_even(float32(acc) * multiplier) + zp) in the zero point's container."""
    product = acc.astype(np.float32) * multiplier.astype(np.float32)
    return quantize(product, np.asarray(zp).astype(np.int64), np.dtype(np.asarray(zp).dtype))


def output_multiplier(*scales: np.ndarray) -> np.ndarray:
    """(a_scale * b_scale) / y_scale in float32 arithmetic, as onnxruntime computes it."""
    a, b, y = (np.asarray(s).astype(np.float32) for s in scales)
    return (a * b) / y


@register("QLinearConv", since=10)
def qlinear_conv(
    ctx: NodeContext,
    x: np.ndarray,
    x_scale: np.ndarray,
    x_zp: np.ndarray,
    w: np.ndarray,
    w_scale: np.ndarray,
    w_zp: np.ndarray,
    y_scale: np.ndarray,
    y_zp: np.ndarray,
    bias: np.ndarray | None = None,
) -> np.ndarray:
    """Quantized convolution: exact integer conv of centred x and w (+ int32 bias), then requantize."""
    kernel = tuple(int(k) for k in (ctx.attr("kernel_shape", None) or w.shape[2:]))
    geo = geometry(ctx, tuple(x.shape[2:]), kernel)
    xi = x.astype(np.int64) - np.asarray(x_zp).astype(np.int64).reshape(())
    w_zp = np.asarray(w_zp).astype(np.int64)
    wi = w.astype(np.int64) - (w_zp.reshape(()) if w_zp.size == 1 else w_zp.reshape((-1,) + (1,) * (w.ndim - 1)))
    acc = integer_conv(xi, wi, geo, int(ctx.attr("group", 1)))
    channel = (1, -1) + (1,) * (x.ndim - 2)
    if bias is not None:
        acc = acc + bias.astype(np.int64).reshape(channel)
    mult = output_multiplier(x_scale, w_scale, y_scale)
    mult = mult.reshape(()) if mult.size == 1 else mult.reshape(channel)
    return requantize(acc, mult, np.asarray(y_zp).reshape(()))


def row_param(p: np.ndarray, ndim: int) -> np.ndarray:
    """A QLinearMatMul 'a' parameter: scalar, or per-row vector [M] shaped as a column."""
    p = np.asarray(p)
    if p.size == 1:
        return p.reshape(())
    return p.reshape(-1, 1) if p.ndim == 1 else p


def col_param(p: np.ndarray) -> np.ndarray:
    """A QLinearMatMul 'b' parameter: scalar, or per-column vector [N] (broadcasts over rows)."""
    p = np.asarray(p)
    return p.reshape(()) if p.size == 1 else p


@register("QLinearMatMul", since=10)
def qlinear_matmul(
    ctx: NodeContext,
    a: np.ndarray,
    a_scale: np.ndarray,
    a_zp: np.ndarray,
    b: np.ndarray,
    b_scale: np.ndarray,
    b_zp: np.ndarray,
    y_scale: np.ndarray,
    y_zp: np.ndarray,
) -> np.ndarray:
    """Quantized matmul: exact integer (a - a_zp) @ (b - b_zp), then requantize."""
    ai = a.astype(np.int64) - row_param(a_zp, a.ndim).astype(np.int64)
    bi = b.astype(np.int64) - col_param(b_zp).astype(np.int64)
    acc = integer_matmul(ai, bi)
    mult = output_multiplier(row_param(a_scale, a.ndim), col_param(b_scale), np.asarray(y_scale).reshape(()))
    return requantize(acc, mult, np.asarray(y_zp).reshape(()))
