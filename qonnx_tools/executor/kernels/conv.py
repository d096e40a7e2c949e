"""Convolutions: Conv, ConvTranspose, ConvInteger (im2col + matmul; col2im scatter-add).

Float32 convolutions accumulate in float32 (like onnxruntime's MLAS); float16/bfloat16 in
float32, rounded once at the end; integer convolutions are exact (int64, or float64 BLAS
when every partial sum provably fits its 53-bit mantissa).
"""

from __future__ import annotations

from itertools import product
from math import prod

import numpy as np

from qonnx_tools.errors import InvalidAttributeError
from qonnx_tools.executor.kernels._spatial import (
    Geometry,
    accumulator,
    auto_pad_mode,
    channel_vector,
    conv_core,
    effective,
    geometry,
    integer_conv,
    ints,
)
from qonnx_tools.executor.registry import NodeContext, register


def conv_geometry(ctx: NodeContext, x: np.ndarray, w: np.ndarray) -> Geometry:
    """Geometry of a Conv-like node; kernel_shape defaults to the weight's spatial shape."""
    kernel = tuple(int(k) for k in (ctx.attr("kernel_shape", None) or w.shape[2:]))
    if kernel != tuple(w.shape[2:]):
        raise InvalidAttributeError(f"node {ctx.name!r} ({ctx.op_type}): kernel_shape {kernel} != weight {w.shape}")
    return geometry(ctx, tuple(x.shape[2:]), kernel)


@register("Conv", since=1)
def conv(ctx: NodeContext, x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
    """N-D grouped, strided, dilated, padded convolution with optional bias."""
    acc = accumulator(x.dtype)
    geo = conv_geometry(ctx, x, w)
    y = conv_core(x.astype(acc, copy=False), w.astype(acc, copy=False), geo, int(ctx.attr("group", 1)))
    if b is not None:
        y += channel_vector(b.astype(acc, copy=False), y.ndim)
    return y.astype(x.dtype, copy=False)


def _centred(v: np.ndarray | None, ndim: int, axis: int) -> np.ndarray | int:
    """Zero point as int64, scalar or per-channel along ``axis`` of a rank-``ndim`` tensor."""
    if v is None:
        return 0
    v = np.asarray(v).astype(np.int64)
    if v.size == 1:
        return v.reshape(())
    shape = [1] * ndim
    shape[axis] = -1
    return v.reshape(shape)


@register("ConvInteger", since=10)
def conv_integer(
    ctx: NodeContext, x: np.ndarray, w: np.ndarray, x_zp: np.ndarray | None = None, w_zp: np.ndarray | None = None
) -> np.ndarray:
    """Integer convolution of (x - x_zero_point) and (w - w_zero_point), int32 output."""
    geo = conv_geometry(ctx, x, w)
    xi = x.astype(np.int64) - _centred(x_zp, x.ndim, 1)
    wi = w.astype(np.int64) - _centred(w_zp, w.ndim, 0)
    # padding happens after centring: padded positions contribute zero, as ONNX specifies
    return integer_conv(xi, wi, geo, int(ctx.attr("group", 1))).astype(np.int32)


def transpose_pads(ctx: NodeContext, sizes: tuple[int, ...], kernel: tuple[int, ...]) -> tuple[tuple[int, ...], ...]:
    """(strides, dilations, output_padding, begin, end, out) of a ConvTranspose node, per the ONNX spec."""
    n = len(sizes)
    strides, dilations = ints(ctx, "strides", n, 1), ints(ctx, "dilations", n, 1)
    extra = ints(ctx, "output_padding", n, 0)
    natural = [s * (i - 1) + o + effective(k, d) for i, s, o, k, d in zip(sizes, strides, extra, kernel, dilations)]
    mode = auto_pad_mode(ctx)
    shape = ctx.attr("output_shape", None)
    if shape:
        target = [int(v) for v in shape][-n:]
    elif mode in ("SAME_UPPER", "SAME_LOWER"):
        target = [i * s for i, s in zip(sizes, strides)]
    else:
        pads = (0,) * (2 * n) if mode == "VALID" else ints(ctx, "pads", 2 * n, 0)
        begin, end = pads[:n], pads[n:]
        out = tuple(nat - b - e for nat, b, e in zip(natural, begin, end))
        return strides, dilations, extra, tuple(begin), tuple(end), out
    totals = [nat - t for nat, t in zip(natural, target)]
    if mode == "SAME_UPPER":
        begin = tuple(t // 2 for t in totals)
    else:
        begin = tuple(t - t // 2 for t in totals)
    end = tuple(t - b for t, b in zip(totals, begin))
    return strides, dilations, extra, begin, end, tuple(target)


@register("ConvTranspose", since=1)
def conv_transpose(ctx: NodeContext, x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
    """N-D grouped transposed convolution: per-pixel matmul, then scatter-add per kernel position."""
    group = int(ctx.attr("group", 1))
    n_batch, channels = x.shape[:2]
    sizes, kernel, nsp = tuple(x.shape[2:]), tuple(w.shape[2:]), x.ndim - 2
    if w.shape[0] != channels or channels % group:
        where = f"node {ctx.name!r} (ConvTranspose)"
        raise InvalidAttributeError(f"{where}: input {x.shape}, weight {w.shape} and group {group} do not match")
    strides, dilations, _, begin, _, out = transpose_pads(ctx, sizes, kernel)
    acc = accumulator(x.dtype)
    cg, mg = channels // group, w.shape[1]
    xg = np.ascontiguousarray(x.astype(acc, copy=False).reshape(n_batch, group, cg, prod(sizes)).transpose(0, 1, 3, 2))
    wg = w.astype(acc, copy=False).reshape(group, cg, mg * prod(kernel))
    cols = np.matmul(xg, wg).reshape((n_batch, group) + sizes + (mg,) + kernel)
    order = (0, 1, 2 + nsp) + tuple(range(3 + nsp, 3 + 2 * nsp)) + tuple(range(2, 2 + nsp))
    cols = np.ascontiguousarray(cols.transpose(order))  # N, G, Mg, *k, *in
    lo = [min(0, bg) for bg in begin]
    full = [(i - 1) * s + effective(k, d) for i, s, k, d in zip(sizes, strides, kernel, dilations)]
    hi = [max(f, bg + o) for f, bg, o in zip(full, begin, out)]
    buf = np.zeros((n_batch, group, mg) + tuple(h - l for h, l in zip(hi, lo)), dtype=acc)
    for tap in product(*(range(k) for k in kernel)):
        starts = [t * d - l for t, d, l in zip(tap, dilations, lo)]
        dst = tuple(slice(a, a + (i - 1) * s + 1, s) for a, i, s in zip(starts, sizes, strides))
        buf[(Ellipsis,) + dst] += cols[(slice(None),) * 3 + tap]
    crop = tuple(slice(bg - l, bg - l + o) for bg, l, o in zip(begin, lo, out))
    y = buf[(Ellipsis,) + crop].reshape((n_batch, group * mg) + tuple(out))
    if b is not None:
        y = y + channel_vector(b.astype(acc, copy=False), y.ndim)
    return y.astype(x.dtype, copy=False)
