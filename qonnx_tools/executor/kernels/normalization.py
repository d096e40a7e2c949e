"""Normalization: BatchNormalization (inference only), InstanceNormalization, LayerNormalization, LRN.

Statistics are computed in at least float32 (float16/bfloat16 inputs widen), results are
cast back to the input dtype.
"""

from __future__ import annotations

import numpy as np

from qonnx_tools._ir import ir
from qonnx_tools.errors import InvalidAttributeError, UnsupportedOpError
from qonnx_tools.executor.registry import NodeContext, register


def widened(dtype: np.dtype) -> np.dtype:
    """float64 stays, every other float computes in float32."""
    return np.dtype(np.float64) if np.dtype(dtype) == np.float64 else np.dtype(np.float32)


def per_channel(v: np.ndarray, ndim: int, dtype: np.dtype) -> np.ndarray:
    """A BatchNorm/InstanceNorm parameter broadcastable over (N, C, *spatial)."""
    v = np.asarray(v).astype(dtype, copy=False)
    if v.ndim > 1:  # spatial=0 (opset <= 7): one value per (C, *spatial) element
        return v.reshape((1,) + v.shape)
    return v.reshape((1, -1) + (1,) * (ndim - 2))


@register("BatchNormalization", since=1)
def batch_normalization(
    ctx: NodeContext, x: np.ndarray, scale: np.ndarray, bias: np.ndarray, mean: np.ndarray, var: np.ndarray
) -> np.ndarray:
    """Inference batch norm with the given running mean/var; training mode is not supported."""
    if ctx.attr("training_mode", 0) or ctx.n_outputs > 1:
        raise UnsupportedOpError(
            f"node {ctx.name!r} (BatchNormalization): training mode (batch statistics, "
            "running-stat outputs) is not supported"
        )
    acc = widened(x.dtype)
    eps = ctx.attr("epsilon", 1e-5)
    factor = per_channel(scale, x.ndim, acc) / np.sqrt(per_channel(var, x.ndim, acc) + np.asarray(eps, dtype=acc))
    shift = per_channel(bias, x.ndim, acc) - per_channel(mean, x.ndim, acc) * factor
    return (x.astype(acc, copy=False) * factor + shift).astype(x.dtype, copy=False)


@register("InstanceNormalization", since=1)
def instance_normalization(ctx: NodeContext, x: np.ndarray, scale: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """Normalize each (n, c) plane over its spatial axes, then scale and shift per channel."""
    acc = widened(x.dtype)
    xa = x.astype(acc, copy=False)
    axes = tuple(range(2, x.ndim))
    mean = xa.mean(axis=axes, keepdims=True)
    centred = xa - mean
    var = (centred * centred).mean(axis=axes, keepdims=True)
    eps = np.asarray(ctx.attr("epsilon", 1e-5), dtype=acc)
    y = centred / np.sqrt(var + eps) * per_channel(scale, x.ndim, acc) + per_channel(bias, x.ndim, acc)
    return y.astype(x.dtype, copy=False)


@register("LayerNormalization", since=17)
def layer_normalization(
    ctx: NodeContext, x: np.ndarray, scale: np.ndarray, bias: np.ndarray | None = None
) -> np.ndarray | tuple[np.ndarray, ...]:
    """Standardize over axes [axis, rank) in stash_type precision, then scale/shift; Mean/InvStdDev outputs."""
    axis = int(ctx.attr("axis", -1))
    axis = axis + x.ndim if axis < 0 else axis
    stash = np.dtype(ir.DataType(int(ctx.attr("stash_type", 1))).numpy())
    acc = np.dtype(np.float32) if stash.itemsize < 4 else stash
    xa = x.astype(acc, copy=False)
    axes = tuple(range(axis, x.ndim))
    mean = xa.mean(axis=axes, keepdims=True)
    centred = xa - mean
    var = (centred * centred).mean(axis=axes, keepdims=True)
    inv_std = 1 / np.sqrt(var + np.asarray(ctx.attr("epsilon", 1e-5), dtype=acc))
    normalized = (centred * inv_std).astype(x.dtype, copy=False)
    y = normalized * scale
    if bias is not None:
        y = y + bias
    outputs = (y.astype(x.dtype, copy=False), mean.astype(stash), inv_std.astype(stash))
    return outputs[: max(1, ctx.n_outputs)]


@register("LRN", since=1)
def lrn(ctx: NodeContext, x: np.ndarray) -> np.ndarray:
    """Local response normalization across channels (axis 1):
    ``y = x / (bias + alpha / size * square_sum) ** beta``, where square_sum[n, c] sums x[n, i]^2
    over i in [c - floor((size-1)/2), c + ceil((size-1)/2)] clipped to [0, C-1].

    The window sum adds ``size`` shifted slices of the zero-padded squares (no cumulative
    sum, so no cancellation between large and small channels)."""
    size = int(ctx.required_attr("size"))
    if size < 1:
        raise InvalidAttributeError(f"node {ctx.name!r} (LRN): size must be >= 1, not {size}")
    if x.ndim < 2:
        raise InvalidAttributeError(f"node {ctx.name!r} (LRN): input of rank {x.ndim} has no channel axis")
    acc = widened(x.dtype)
    alpha = float(ctx.attr("alpha", 1e-4))
    beta = float(ctx.attr("beta", 0.75))
    bias = float(ctx.attr("bias", 1.0))
    channels = x.shape[1]
    before = min((size - 1) // 2, max(channels - 1, 0))  # channels below c in the window
    after = min(size - 1 - (size - 1) // 2, max(channels - 1, 0))  # ceil((size-1)/2) above c
    xa = x.astype(acc, copy=False)
    squares = np.pad(xa * xa, [(0, 0), (before, after)] + [(0, 0)] * (x.ndim - 2))
    square_sum = squares[:, 0:channels].copy()
    for k in range(1, before + after + 1):
        square_sum += squares[:, k : k + channels]
    scale = np.asarray(bias, dtype=acc) + np.asarray(alpha / size, dtype=acc) * square_sum
    return (xa / scale ** np.asarray(beta, dtype=acc)).astype(x.dtype, copy=False)
