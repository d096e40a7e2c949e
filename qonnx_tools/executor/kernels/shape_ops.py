"""Shape manipulation, data movement, constants and casts.

Where an ONNX op moved an attribute to an input (Reshape 5, Tile 6, Slice 10,
Squeeze/Unsqueeze 13, Split 13), both forms are registered as separate kernel versions.
"""

from __future__ import annotations

from typing import Any

import ml_dtypes
import numpy as np

from qonnx_tools._ir import ir
from qonnx_tools.errors import InvalidAttributeError, UnsupportedOpError
from qonnx_tools.executor.registry import NodeContext, register


def _ints(values: Any) -> list[int]:
    """A 1-D int tensor/tuple as a list of Python ints (None -> [])."""
    return [] if values is None else [int(v) for v in np.asarray(values).reshape(-1)]


# -- identity-like -------------------------------------------------------------


@register("Identity")
def identity(ctx: NodeContext, x: np.ndarray) -> np.ndarray:
    return x


@register("Dropout")
def dropout(
    ctx: NodeContext, x: np.ndarray, ratio: np.ndarray | None = None, training_mode: np.ndarray | None = None
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Inference: output = input (mask of ones); training mode (opset 12+) drops with a seeded RNG.

    In training mode the keep-mask is ``uniform[0, 1) >= ratio`` drawn from
    ``np.random.RandomState(seed)`` (fresh entropy when no ``seed`` attribute) and kept
    values are scaled by ``1 / (1 - ratio)``.
    """
    x = np.asarray(x)
    training = ctx.opset >= 12 and training_mode is not None and bool(np.asarray(training_mode))
    rate = 0.5 if ratio is None else float(np.asarray(ratio))
    if training and rate > 0:
        rng = np.random.RandomState(ctx.attr("seed"))
        mask = rng.uniform(0.0, 1.0, x.shape) >= rate
        out = (mask * x / (1.0 - rate)).astype(x.dtype)
    else:
        mask, out = np.ones(x.shape, dtype=bool), x
    if ctx.n_outputs < 2:
        return out
    # mask is bool from opset 10, the data type before
    return out, (mask if ctx.opset >= 10 else mask.astype(x.dtype))


# -- constants -----------------------------------------------------------------

_CONSTANT_ATTRS = {
    "value_float": np.float32,
    "value_floats": np.float32,
    "value_int": np.int64,
    "value_ints": np.int64,
    "value_string": object,
    "value_strings": object,
}


@register("Constant")
def constant(ctx: NodeContext) -> np.ndarray:
    """The tensor in whichever ``value*`` attribute the node sets."""
    if "value" in ctx.attrs:
        return np.asarray(ctx.attrs["value"])
    for key, dtype in _CONSTANT_ATTRS.items():
        if key in ctx.attrs:
            return np.array(ctx.attrs[key], dtype=dtype)
    if "sparse_value" in ctx.attrs:
        raise UnsupportedOpError(f"node {ctx.name!r} (Constant): sparse_value is not supported")
    raise InvalidAttributeError(f"node {ctx.name!r} (Constant): no value attribute is set")


@register("ConstantOfShape", since=9)
def constant_of_shape(ctx: NodeContext, shape: np.ndarray) -> np.ndarray:
    """A tensor of ``shape`` filled with the 1-element ``value`` (default float32 0)."""
    value = ctx.attr("value")
    value = np.zeros(1, dtype=np.float32) if value is None else np.asarray(value)
    return np.full(_ints(shape), value.reshape(-1)[0], dtype=value.dtype)


@register("Range", since=11)
def range_(ctx: NodeContext, start: np.ndarray, limit: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """start + i * delta for i < max(ceil((limit - start) / delta), 0), in start's dtype."""
    start = np.asarray(start)
    dtype = start.dtype
    if dtype.kind in "iu":
        s, lim, d = int(start), int(limit), int(delta)
        n = max(-((s - lim) // d), 0)
        return (s + np.arange(n, dtype=np.int64) * d).astype(dtype)
    work = np.float32 if (dtype == np.float16 or dtype.kind == "V") else dtype
    s, lim, d = (np.asarray(v).astype(work) for v in (start, limit, delta))
    n = max(int(np.ceil((lim - s) / d)), 0)
    return (s + np.arange(n).astype(work) * d).astype(dtype)


# -- shape queries ---------------------------------------------------------------


@register("Shape")
def shape(ctx: NodeContext, x: np.ndarray) -> np.ndarray:
    """The input's shape as int64, sliced by ``start``/``end`` (opset 15+)."""
    dims = np.shape(x)
    start, end = ctx.attr("start", 0), ctx.attr("end")
    return np.array(dims[start:end] if end is not None else dims[start:], dtype=np.int64)


@register("Size")
def size(ctx: NodeContext, x: np.ndarray) -> np.ndarray:
    return np.array(np.size(x), dtype=np.int64)


# -- reshaping -------------------------------------------------------------------


def _reshape(x: np.ndarray, dims: list[int], allowzero: bool) -> np.ndarray:
    if not allowzero:
        dims = [x.shape[i] if d == 0 else d for i, d in enumerate(dims)]
    return np.reshape(x, dims)


@register("Reshape")
def reshape_v1(ctx: NodeContext, x: np.ndarray) -> np.ndarray:
    """Reshape before opset 5: target ``shape`` attribute."""
    return _reshape(np.asarray(x), _ints(ctx.required_attr("shape")), False)


@register("Reshape", since=5)
def reshape(ctx: NodeContext, x: np.ndarray, shape_: np.ndarray) -> np.ndarray:
    """0 copies the input dim (unless ``allowzero``), -1 is inferred."""
    return _reshape(np.asarray(x), _ints(shape_), bool(ctx.attr("allowzero", 0)))


@register("Flatten")
def flatten(ctx: NodeContext, x: np.ndarray) -> np.ndarray:
    """2-D view: dims before ``axis`` x dims from ``axis`` on."""
    x = np.asarray(x)
    axis = ctx.attr("axis", 1)
    axis = axis + x.ndim if axis < 0 else axis
    lead = int(np.prod(x.shape[:axis], dtype=np.int64))
    return x.reshape(lead, int(np.prod(x.shape[axis:], dtype=np.int64)))


@register("Transpose")
def transpose(ctx: NodeContext, x: np.ndarray) -> np.ndarray:
    """Permute axes by ``perm`` (default: reverse)."""
    perm = ctx.attr("perm")
    return np.transpose(x, None if perm is None else tuple(perm))


def _squeeze(x: np.ndarray, axes: list[int]) -> np.ndarray:
    x = np.asarray(x)
    if not axes:
        return np.squeeze(x)
    return np.squeeze(x, axis=tuple(a % x.ndim for a in axes))


@register("Squeeze")
def squeeze_v1(ctx: NodeContext, x: np.ndarray) -> np.ndarray:
    """Squeeze before opset 13: ``axes`` attribute."""
    return _squeeze(x, _ints(ctx.attr("axes")))


@register("Squeeze", since=13)
def squeeze(ctx: NodeContext, x: np.ndarray, axes: np.ndarray | None = None) -> np.ndarray:
    """Remove the given size-1 axes (all size-1 axes when none are given)."""
    return _squeeze(x, _ints(axes))


def _unsqueeze(x: np.ndarray, axes: list[int]) -> np.ndarray:
    x = np.asarray(x)
    out_rank = x.ndim + len(axes)
    return np.reshape(x, _unsqueezed_shape(x.shape, sorted(a % out_rank for a in axes)))


def _unsqueezed_shape(dims: tuple[int, ...], axes: list[int]) -> list[int]:
    out = list(dims)
    for a in axes:  # ascending, so each insertion index is final
        out.insert(a, 1)
    return out


@register("Unsqueeze")
def unsqueeze_v1(ctx: NodeContext, x: np.ndarray) -> np.ndarray:
    """Unsqueeze before opset 13: ``axes`` attribute."""
    return _unsqueeze(x, _ints(ctx.required_attr("axes")))


@register("Unsqueeze", since=13)
def unsqueeze(ctx: NodeContext, x: np.ndarray, axes: np.ndarray) -> np.ndarray:
    """Insert size-1 axes at the given output positions."""
    return _unsqueeze(x, _ints(axes))


@register("Expand", since=8)
def expand(ctx: NodeContext, x: np.ndarray, shape_: np.ndarray) -> np.ndarray:
    """Broadcast x with ``shape`` (bidirectionally)."""
    x = np.asarray(x)
    out = np.broadcast_shapes(x.shape, tuple(_ints(shape_)))
    return np.array(np.broadcast_to(x, out))


@register("Tile")
def tile_v1(ctx: NodeContext, x: np.ndarray, tiles: np.ndarray, axis: np.ndarray) -> np.ndarray:
    """Tile before opset 6: repeat ``tiles`` times along one ``axis``."""
    x = np.asarray(x)
    reps = [1] * x.ndim
    reps[int(np.asarray(axis).reshape(-1)[0])] = int(np.asarray(tiles).reshape(-1)[0])
    return np.tile(x, reps)


@register("Tile", since=6)
def tile(ctx: NodeContext, x: np.ndarray, repeats: np.ndarray) -> np.ndarray:
    """Repeat x ``repeats[i]`` times along axis i."""
    return np.tile(np.asarray(x), _ints(repeats))


# -- joining, splitting, indexing -------------------------------------------------


@register("Concat")
def concat(ctx: NodeContext, *inputs: np.ndarray) -> np.ndarray:
    """Join along ``axis`` (default 1 before opset 4, required after)."""
    return np.concatenate([np.asarray(a) for a in inputs], axis=ctx.attr("axis", 1))


def _split(ctx: NodeContext, x: np.ndarray, sizes: list[int]) -> tuple[np.ndarray, ...]:
    x = np.asarray(x)
    axis = ctx.attr("axis", 0) % x.ndim
    if not sizes:
        n = ctx.attr("num_outputs", ctx.n_outputs)
        chunk = -(-x.shape[axis] // n)  # ceil: the last chunk may be smaller (opset 18)
        sizes = [min(chunk, max(x.shape[axis] - i * chunk, 0)) for i in range(n)]
    return tuple(np.split(x, np.cumsum(sizes)[:-1], axis=axis))


@register("Split")
def split_v1(ctx: NodeContext, x: np.ndarray, split: np.ndarray | None = None) -> tuple[np.ndarray, ...]:
    """Split before opset 13: ``split`` attribute (or, at opset 1, a second input)."""
    return _split(ctx, x, _ints(split) or _ints(ctx.attr("split")))


@register("Split", since=13)
def split(ctx: NodeContext, x: np.ndarray, split_: np.ndarray | None = None) -> tuple[np.ndarray, ...]:
    """Split along ``axis`` into ``split`` sizes, or equal parts (``num_outputs`` from opset 18)."""
    return _split(ctx, x, _ints(split_))


def _slice(x: np.ndarray, starts: list[int], ends: list[int], axes: list[int], steps: list[int]) -> np.ndarray:
    """Python slicing clamps out-of-range starts/ends exactly as ONNX specifies."""
    x = np.asarray(x)
    axes = axes or list(range(len(starts)))
    steps = steps or [1] * len(starts)
    index = [slice(None)] * x.ndim
    for start, end, axis, step in zip(starts, ends, axes, steps):
        index[axis % x.ndim] = slice(start, end, step)
    return x[tuple(index)]


@register("Slice")
def slice_v1(ctx: NodeContext, x: np.ndarray) -> np.ndarray:
    """Slice before opset 10: ``starts``/``ends``/``axes`` attributes."""
    return _slice(x, _ints(ctx.required_attr("starts")), _ints(ctx.required_attr("ends")), _ints(ctx.attr("axes")), [])


@register("Slice", since=10)
def slice_(
    ctx: NodeContext,
    x: np.ndarray,
    starts: np.ndarray,
    ends: np.ndarray,
    axes: np.ndarray | None = None,
    steps: np.ndarray | None = None,
) -> np.ndarray:
    """Slice from opset 10: starts/ends/axes/steps are inputs."""
    return _slice(x, _ints(starts), _ints(ends), _ints(axes), _ints(steps))


@register("Gather")
def gather(ctx: NodeContext, x: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """Take ``indices`` (negative counts from the end) along ``axis``."""
    x = np.asarray(x)
    axis = ctx.attr("axis", 0) % max(x.ndim, 1)
    idx = np.asarray(indices).astype(np.int64)
    idx = np.where(idx < 0, idx + x.shape[axis], idx)
    return np.take(x, idx, axis=axis)


# -- casts -------------------------------------------------------------------------

_FLOAT8_SATURATING = {
    np.dtype(ml_dtypes.float8_e4m3fn),
    np.dtype(ml_dtypes.float8_e4m3fnuz),
    np.dtype(ml_dtypes.float8_e5m2),
    np.dtype(ml_dtypes.float8_e5m2fnuz),
}
_E8M0 = np.dtype(ml_dtypes.float8_e8m0fnu)


def _to_e8m0(x: np.ndarray, saturate: bool, round_mode: str) -> np.ndarray:
    """Power-of-two float8e8m0 (bias 127, 0xFF = NaN) with round ``up``/``down``/``nearest``."""
    v = np.abs(x.astype(np.float64))
    mant, exp = np.frexp(v)  # v = mant * 2**exp, mant in [0.5, 1)
    frac = 2.0 * mant  # v = frac * 2**(exp - 1), frac in [1, 2)
    if round_mode == "up":
        bump = frac > 1.0
    elif round_mode == "down":
        bump = np.zeros(v.shape, dtype=bool)
    elif round_mode == "nearest":
        bump = frac >= 1.5
    else:
        raise InvalidAttributeError(f"Cast: unknown round_mode {round_mode!r}")
    biased = (exp - 1 + bump.astype(exp.dtype) + 127).astype(np.int64)
    finite_pos = np.isfinite(v) & (v > 0)
    if saturate:
        biased = np.where(np.isinf(v), 254, np.where(finite_pos, np.clip(biased, 0, 254), 0))
    else:
        biased = np.where(finite_pos & (biased >= 0) & (biased <= 254), biased, 255)
    biased = np.where(np.isnan(v), 255, biased)
    return biased.astype(np.uint8).view(_E8M0)


def _cast(x: np.ndarray, to: np.dtype, saturate: bool = True, round_mode: str = "up") -> np.ndarray:
    """ONNX Cast of ``x`` to dtype ``to``; out-of-range float -> int is undefined in ONNX (no warning)."""
    with np.errstate(invalid="ignore", over="ignore"):
        return _cast_impl(np.asarray(x), to, saturate, round_mode)


def _cast_impl(x: np.ndarray, to: np.dtype, saturate: bool, round_mode: str) -> np.ndarray:
    """Cast rules: float8 saturation, e8m0 rounding, strings, then plain NumPy conversion."""
    if x.dtype == to:
        return x
    if to == object:  # numeric -> string
        return x.astype(str).astype(object)
    if x.dtype == object or x.dtype.kind in "SU":  # string -> numeric, via float64
        return _cast_impl(x.astype(str).astype(np.float64), to, saturate, round_mode)
    if to == _E8M0:
        return _to_e8m0(x, saturate, round_mode)
    if to in _FLOAT8_SATURATING:
        wide = x if x.dtype.kind == "f" else x.astype(np.float32 if x.dtype.kind == "V" else np.float64)
        if saturate:
            limit = float(ml_dtypes.finfo(to).max)
            wide = np.where(np.isnan(wide), wide, np.clip(wide, -limit, limit))
        return wide.astype(to)
    if to == bool and x.dtype.kind == "V":
        return x.astype(np.float32).astype(bool)
    return x.astype(to)


def _dtype_of(to: int | str) -> np.dtype:
    """NumPy dtype of an ONNX TensorProto data type (enum value, or name before opset 6)."""
    data_type = ir.DataType[to.upper()] if isinstance(to, str) else ir.DataType(to)
    return np.dtype(data_type.numpy())


@register("Cast")
def cast(ctx: NodeContext, x: np.ndarray) -> np.ndarray:
    """Cast to the ``to`` data type (``saturate`` from 19, ``round_mode`` from 24)."""
    return _cast(x, _dtype_of(ctx.required_attr("to")), bool(ctx.attr("saturate", 1)), ctx.attr("round_mode", "up"))


@register("CastLike", since=15)
def cast_like(ctx: NodeContext, x: np.ndarray, like: np.ndarray) -> np.ndarray:
    """Cast to the data type of the second input."""
    return _cast(x, np.asarray(like).dtype, bool(ctx.attr("saturate", 1)), ctx.attr("round_mode", "up"))
