"""Element-wise math, comparison and logic ops with NumPy (multidirectional) broadcasting.

Arithmetic keeps the ONNX input dtype: integer Div truncates toward zero like C,
Mod follows the ``fmod`` attribute, comparisons return bool, Round is half-to-even.
Ops before opset 7 may carry the legacy ``broadcast``/``axis`` attributes; they are honoured.
"""

from __future__ import annotations

from functools import reduce
from typing import Callable

import numpy as np

from qonnx_tools.executor.registry import NodeContext, register

# -- helpers -------------------------------------------------------------------


def _legacy_broadcast(ctx: NodeContext, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pre-opset-7 ``broadcast=1, axis=k``: align B with A starting at ``axis`` (default: suffix)."""
    if ctx.opset >= 7 or not ctx.attr("broadcast", 0):
        return a, b
    a, b = np.asarray(a), np.asarray(b)
    axis = ctx.attr("axis")
    if axis is None or b.ndim == 0:
        return a, b
    axis = axis % a.ndim if a.ndim else 0
    trailing = a.ndim - axis - b.ndim
    return a, b.reshape(b.shape + (1,) * max(trailing, 0))


def _binary(ctx: NodeContext, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return _legacy_broadcast(ctx, np.asarray(a), np.asarray(b))


def _same_dtype(result: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Result as an array of ``dtype`` (NumPy may promote or return a scalar)."""
    result = np.asarray(result)
    return result if result.dtype == dtype else result.astype(dtype)




def _float_op(fn: Callable[[np.ndarray], np.ndarray], x: np.ndarray) -> np.ndarray:
    """Apply a float ufunc-like ``fn``; ml_dtypes floats (bfloat16, ...) are computed in float32."""
    x = np.asarray(x)
    if x.dtype.kind == "V":
        return _same_dtype(fn(x.astype(np.float32)), x.dtype)
    return _same_dtype(fn(x), x.dtype)


def erf(x: np.ndarray) -> np.ndarray:
    """Error function, vectorised, accurate to double precision; returns ``x``'s dtype."""
    x = np.asarray(x)
    v = x.astype(np.float64)
    a = np.abs(v)
    small = a < 3.0
    # |x| < 3: erf(x) = 2/sqrt(pi) * exp(-x^2) * sum_n (2x^2)^n x / (1*3*...*(2n+1)), all terms positive.
    s = np.where(small, a, 0.0)
    term = s.copy()
    total = s.copy()
    for n in range(1, 90):
        term = term * (2.0 * s * s) / (2 * n + 1)
        total = total + term
    series = 2.0 / np.sqrt(np.pi) * np.exp(-s * s) * total
    # |x| >= 3: erfc(x) = exp(-x^2)/sqrt(pi) / (x + (1/2)/(x + 1/(x + (3/2)/(x + ...)))), continued fraction.
    b = np.where(small, 3.0, np.minimum(a, 30.0))
    frac = b.copy()
    for k in range(60, 0, -1):
        frac = b + (k / 2.0) / frac
    tail = 1.0 - np.exp(-b * b) / np.sqrt(np.pi) / frac
    out = np.copysign(np.where(small, series, tail), v)
    out = np.where(np.isnan(v), np.nan, out)
    return _same_dtype(out, x.dtype) if x.dtype.kind in "fV" else out


# -- arithmetic ------------------------------------------------------------------


@register("Add")
def add(ctx: NodeContext, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = _binary(ctx, a, b)
    return _same_dtype(np.add(a, b), a.dtype)


@register("Sub")
def sub(ctx: NodeContext, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = _binary(ctx, a, b)
    return _same_dtype(np.subtract(a, b), a.dtype)


@register("Mul")
def mul(ctx: NodeContext, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = _binary(ctx, a, b)
    return _same_dtype(np.multiply(a, b), a.dtype)


@register("Div")
def div(ctx: NodeContext, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Float division; integer division truncates toward zero (C semantics)."""
    a, b = _binary(ctx, a, b)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if a.dtype.kind in "iu":
            q = np.floor_divide(a, b)
            if a.dtype.kind == "i":
                inexact = (np.remainder(a, b) != 0) & ((a < 0) != (b < 0))
                q = q + inexact.astype(q.dtype)
            return _same_dtype(q, a.dtype)
        return _same_dtype(np.divide(a, b), a.dtype)


@register("Pow")
def pow_(ctx: NodeContext, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """x ** y with the dtype of x; mixed int/float exponents are computed in float64."""
    x, y = _binary(ctx, x, y)
    with np.errstate(all="ignore"):
        if x.dtype.kind in "iu" and y.dtype.kind in "iu" and not np.any(y < 0):
            return _same_dtype(np.power(x, y.astype(x.dtype)), x.dtype)
        if x.dtype.kind == "V" or y.dtype.kind == "V":
            return _same_dtype(np.power(x.astype(np.float32), y.astype(np.float32)), x.dtype)
        if x.dtype.kind == "f" and y.dtype.kind in "iu":
            return _same_dtype(np.power(x, y.astype(x.dtype)), x.dtype)
        return _same_dtype(np.power(x.astype(np.float64), y.astype(np.float64)), x.dtype)


def _unary(op_type: str, fn: Callable[[np.ndarray], np.ndarray], since: int = 1) -> None:
    """Register a one-input float op computed with ``fn``."""

    def kernel(ctx: NodeContext, x: np.ndarray) -> np.ndarray:
        with np.errstate(all="ignore"):
            return _float_op(fn, x)

    kernel.__name__ = op_type.lower()
    kernel.__doc__ = f"{op_type}, element-wise."
    register(op_type, since=since)(kernel)


_unary("Sqrt", np.sqrt)
_unary("Exp", np.exp)
_unary("Log", np.log)
_unary("Erf", erf, since=9)
_unary("Reciprocal", lambda v: np.divide(1, v))
_unary("Floor", np.floor)
_unary("Ceil", np.ceil)
_unary("Round", np.round, since=11)  # np.round rounds half to even, as ONNX requires


@register("Neg")
def neg(ctx: NodeContext, x: np.ndarray) -> np.ndarray:
    return _float_op(np.negative, x)


@register("Abs")
def abs_(ctx: NodeContext, x: np.ndarray) -> np.ndarray:
    return _float_op(np.abs, x)


@register("Sign", since=9)
def sign(ctx: NodeContext, x: np.ndarray) -> np.ndarray:
    return _float_op(np.sign, x)


# -- variadic --------------------------------------------------------------------


def _variadic(ufunc: np.ufunc, inputs: tuple[np.ndarray, ...]) -> np.ndarray:
    arrays = [np.asarray(a) for a in inputs]
    dtype = arrays[0].dtype
    if dtype.kind == "V":
        return _same_dtype(reduce(ufunc, [a.astype(np.float32) for a in arrays]), dtype)
    return _same_dtype(reduce(ufunc, arrays), dtype)


@register("Max")
def max_(ctx: NodeContext, *inputs: np.ndarray) -> np.ndarray:
    """Element-wise maximum of all inputs (NaN propagates)."""
    return _variadic(np.maximum, inputs)


@register("Min")
def min_(ctx: NodeContext, *inputs: np.ndarray) -> np.ndarray:
    """Element-wise minimum of all inputs (NaN propagates)."""
    return _variadic(np.minimum, inputs)


@register("Sum")
def sum_(ctx: NodeContext, *inputs: np.ndarray) -> np.ndarray:
    return _variadic(np.add, inputs)


@register("Mean")
def mean(ctx: NodeContext, *inputs: np.ndarray) -> np.ndarray:
    total = _variadic(np.add, inputs)
    return _same_dtype(np.divide(total, len(inputs)), total.dtype)


@register("Mod", since=10)
def mod(ctx: NodeContext, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """fmod=0: result has the sign of B (floor); fmod=1: sign of A (C fmod)."""
    a, b = np.asarray(a), np.asarray(b)
    fn = np.fmod if ctx.attr("fmod", 0) else np.mod
    with np.errstate(all="ignore"):
        if a.dtype.kind in "iu":
            # integer division by zero is undefined in ONNX; NumPy yields 0
            return _same_dtype(fn(a, b), a.dtype)
        wide = np.float32 if a.dtype.kind == "V" else a.dtype
        return _same_dtype(fn(a.astype(wide), b.astype(wide)), a.dtype)


# -- comparison and logic ------------------------------------------------------


def _compare(op_type: str, ufunc: np.ufunc, since: int = 1) -> None:
    """Register a broadcasting comparison/logic op returning bool."""

    def kernel(ctx: NodeContext, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        a, b = _binary(ctx, a, b)
        if a.dtype.kind == "V" or b.dtype.kind == "V":
            a, b = a.astype(np.float32), b.astype(np.float32)
        return np.asarray(ufunc(a, b)).astype(bool, copy=False)

    kernel.__name__ = op_type.lower()
    kernel.__doc__ = f"{op_type}, element-wise with broadcasting; bool output."
    register(op_type, since=since)(kernel)


_compare("Equal", np.equal)
_compare("Greater", np.greater)
_compare("Less", np.less)
_compare("GreaterOrEqual", np.greater_equal, since=12)
_compare("LessOrEqual", np.less_equal, since=12)
_compare("And", np.logical_and)
_compare("Or", np.logical_or)
_compare("Xor", np.logical_xor)


@register("Not")
def not_(ctx: NodeContext, x: np.ndarray) -> np.ndarray:
    return np.logical_not(x)


@register("Where", since=9)
def where(ctx: NodeContext, cond: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Select from X where the condition holds, else from Y (broadcasting)."""
    x = np.asarray(x)
    return _same_dtype(np.where(np.asarray(cond, dtype=bool), x, y), x.dtype)


@register("IsNaN", since=9)
def isnan(ctx: NodeContext, x: np.ndarray) -> np.ndarray:
    x = np.asarray(x)
    return np.isnan(x.astype(np.float32) if x.dtype.kind == "V" else x)


@register("IsInf", since=10)
def isinf(ctx: NodeContext, x: np.ndarray) -> np.ndarray:
    """Infinity test, restricted by ``detect_positive`` / ``detect_negative``."""
    x = np.asarray(x)
    x = x.astype(np.float32) if x.dtype.kind == "V" else x
    pos, negv = ctx.attr("detect_positive", 1), ctx.attr("detect_negative", 1)
    return np.isinf(x) & (((x > 0) & bool(pos)) | ((x < 0) & bool(negv)))
