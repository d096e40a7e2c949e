"""Activation functions and (Log)Softmax; results keep the input dtype.

float16 and ml_dtypes floats (bfloat16, ...) are computed in float32 and rounded once.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from qonnx_tools.executor.kernels.elementwise import erf
from qonnx_tools.executor.registry import NodeContext, register

_UP = {np.dtype(np.float16)}


def _apply(fn: Callable[[np.ndarray], np.ndarray], x: np.ndarray) -> np.ndarray:
    """``fn`` on x (upcast from float16/bfloat16 to float32), result cast back to x's dtype."""
    x = np.asarray(x)
    work = x.astype(np.float32) if (x.dtype in _UP or x.dtype.kind == "V") else x
    with np.errstate(all="ignore"):
        out = np.asarray(fn(work))
    return out if out.dtype == x.dtype else out.astype(x.dtype)


ElementFn = Callable[[NodeContext, np.ndarray], np.ndarray]


def _unary(op_type: str, since: int, fn: ElementFn) -> None:
    """Register ``op_type`` as ``fn(ctx, x)`` applied through ``_apply``."""

    def kernel(ctx: NodeContext, x: np.ndarray) -> np.ndarray:
        return _apply(lambda v: fn(ctx, v), x)

    kernel.__name__ = op_type.lower()
    kernel.__doc__ = f"{op_type} activation."
    register(op_type, since=since)(kernel)


def _relu(ctx: NodeContext, v: np.ndarray) -> np.ndarray:
    return np.maximum(v, np.zeros((), v.dtype))  # float and (opset 14+) signed integer inputs


def _leaky_relu(ctx: NodeContext, v: np.ndarray) -> np.ndarray:
    return np.where(v >= 0, v, ctx.attr("alpha", 0.01) * v)


def _elu(ctx: NodeContext, v: np.ndarray) -> np.ndarray:
    return np.where(v >= 0, v, ctx.attr("alpha", 1.0) * np.expm1(np.minimum(v, 0)))


def _selu(ctx: NodeContext, v: np.ndarray) -> np.ndarray:
    alpha = ctx.attr("alpha", 1.67326319217681884765625)
    gamma = ctx.attr("gamma", 1.05070102214813232421875)
    return gamma * np.where(v > 0, v, alpha * np.expm1(np.minimum(v, 0)))


def _celu(ctx: NodeContext, v: np.ndarray) -> np.ndarray:
    alpha = ctx.attr("alpha", 1.0)
    return np.maximum(v, 0) + np.minimum(0, alpha * np.expm1(np.minimum(v, 0) / alpha))


def _sigmoid(ctx: NodeContext, v: np.ndarray) -> np.ndarray:
    e = np.exp(-np.abs(v))  # never overflows
    return np.where(v >= 0, 1 / (1 + e), e / (1 + e))


def _hard_sigmoid(ctx: NodeContext, v: np.ndarray) -> np.ndarray:
    return np.clip(ctx.attr("alpha", 0.2) * v + ctx.attr("beta", 0.5), 0, 1)


def _gelu(ctx: NodeContext, v: np.ndarray) -> np.ndarray:
    if ctx.attr("approximate", "none") == "tanh":
        return 0.5 * v * (1 + np.tanh(np.sqrt(2 / np.pi) * (v + 0.044715 * v**3)))
    return 0.5 * v * (1 + erf(v / np.sqrt(2)))


_unary("Relu", 1, _relu)
_unary("LeakyRelu", 1, _leaky_relu)
_unary("Elu", 1, _elu)
_unary("Selu", 1, _selu)
_unary("Celu", 12, _celu)
_unary("Sigmoid", 1, _sigmoid)
_unary("HardSigmoid", 1, _hard_sigmoid)
_unary("HardSwish", 14, lambda ctx, v: v * np.clip(v / 6 + 0.5, 0, 1))
_unary("Tanh", 1, lambda ctx, v: np.tanh(v))
_unary("Softplus", 1, lambda ctx, v: np.logaddexp(0, v))
_unary("Softsign", 1, lambda ctx, v: v / (1 + np.abs(v)))
_unary("ThresholdedRelu", 10, lambda ctx, v: np.where(v > ctx.attr("alpha", 1.0), v, 0))
_unary("Gelu", 20, _gelu)


@register("PRelu")
def prelu(ctx: NodeContext, x: np.ndarray, slope: np.ndarray) -> np.ndarray:
    """x where x >= 0, else slope * x (slope broadcasts to x)."""
    slope = np.asarray(slope)
    if ctx.opset < 7 and slope.ndim == 1 and x.ndim > 1 and slope.size == x.shape[1] and slope.size > 1:
        slope = slope.reshape((-1,) + (1,) * (x.ndim - 2))  # legacy per-channel slope
    return _apply(lambda v: np.where(v >= 0, v, slope.astype(v.dtype) * v), x)


@register("Clip")
def clip_v1(ctx: NodeContext, x: np.ndarray) -> np.ndarray:
    """Clip before opset 11: bounds are the ``min``/``max`` attributes."""
    x = np.asarray(x)
    info = np.finfo(x.dtype if x.dtype.kind == "f" else np.float32)  # defaults: lowest / max of the type
    lo, hi = ctx.attr("min", float(info.min)), ctx.attr("max", float(info.max))
    return _apply(lambda v: np.minimum(np.maximum(v, lo), hi), x)


@register("Clip", since=11)
def clip(ctx: NodeContext, x: np.ndarray, lo: np.ndarray | None = None, hi: np.ndarray | None = None) -> np.ndarray:
    """Clip from opset 11: optional ``min``/``max`` inputs; min > max gives max everywhere."""
    x = np.asarray(x)
    out = x
    if lo is not None:
        out = np.maximum(out, np.asarray(lo, dtype=x.dtype))
    if hi is not None:
        out = np.minimum(out, np.asarray(hi, dtype=x.dtype))
    return np.asarray(out, dtype=x.dtype)


def _softmax_axis(ctx: NodeContext, x: np.ndarray) -> tuple[np.ndarray, int, tuple[int, ...]]:
    """(array to reduce, axis, output shape): before opset 13, coerce to 2-D at ``axis``."""
    if ctx.opset >= 13:
        return x, ctx.attr("axis", -1), x.shape
    axis = ctx.attr("axis", 1) % max(x.ndim, 1)
    lead = int(np.prod(x.shape[:axis], dtype=np.int64))
    return x.reshape(lead, -1), 1, x.shape


def _log_softmax(v: np.ndarray, axis: int) -> np.ndarray:
    shifted = v - np.max(v, axis=axis, keepdims=True)
    return shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))


@register("Softmax")
def softmax(ctx: NodeContext, x: np.ndarray) -> np.ndarray:
    """exp(x) / sum(exp(x)) along ``axis`` (numerically stable)."""
    x = np.asarray(x)
    flat, axis, shape = _softmax_axis(ctx, x)

    def fn(v: np.ndarray) -> np.ndarray:
        e = np.exp(v - np.max(v, axis=axis, keepdims=True))
        return e / np.sum(e, axis=axis, keepdims=True)

    return _apply(fn, flat).reshape(shape)


@register("LogSoftmax")
def log_softmax(ctx: NodeContext, x: np.ndarray) -> np.ndarray:
    """x - logsumexp(x) along ``axis``."""
    x = np.asarray(x)
    flat, axis, shape = _softmax_axis(ctx, x)
    return _apply(lambda v: _log_softmax(v, axis), flat).reshape(shape)
