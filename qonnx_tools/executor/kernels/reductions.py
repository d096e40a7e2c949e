"""Reductions (Reduce*), ArgMax/ArgMin and TopK.

``axes`` is an attribute before opset 18 (before 13 for ReduceSum) and an optional
input afterwards; empty/absent axes reduce everything unless ``noop_with_empty_axes``.
Results keep the input dtype (float16/bfloat16 accumulate in float32).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from qonnx_tools.executor.registry import NodeContext, register

Reducer = Callable[[np.ndarray, tuple[int, ...]], np.ndarray]


def _work(x: np.ndarray) -> np.ndarray:
    """x, upcast to float32 when it is float16 or an ml_dtypes float."""
    return x.astype(np.float32) if x.dtype == np.float16 or x.dtype.kind == "V" else x


def _extreme(x: np.ndarray, largest: bool):
    """Identity element of max (largest) / min reductions for x's dtype."""
    if x.dtype == bool:
        return not largest
    if x.dtype.kind in "iu":
        info = np.iinfo(x.dtype)
        return info.min if largest else info.max
    return -np.inf if largest else np.inf


_REDUCERS: dict[str, Reducer] = {
    "ReduceSum": lambda v, ax: np.sum(v, axis=ax, keepdims=True, dtype=v.dtype),
    "ReduceMean": lambda v, ax: np.mean(v, axis=ax, keepdims=True),
    "ReduceProd": lambda v, ax: np.prod(v, axis=ax, keepdims=True, dtype=v.dtype),
    "ReduceMax": lambda v, ax: np.max(v, axis=ax, keepdims=True, initial=_extreme(v, True)),
    "ReduceMin": lambda v, ax: np.min(v, axis=ax, keepdims=True, initial=_extreme(v, False)),
    "ReduceL1": lambda v, ax: np.sum(np.abs(v), axis=ax, keepdims=True, dtype=v.dtype),
    "ReduceL2": lambda v, ax: np.sqrt(np.sum(v * v, axis=ax, keepdims=True, dtype=v.dtype)),
    "ReduceSumSquare": lambda v, ax: np.sum(v * v, axis=ax, keepdims=True, dtype=v.dtype),
}


def _reduce(ctx: NodeContext, reducer: Reducer, x: np.ndarray, axes: np.ndarray | None, from_input: bool) -> np.ndarray:
    x = np.asarray(x)
    if not from_input:
        axes = ctx.attr("axes")
    axes = () if axes is None else tuple(int(a) for a in np.asarray(axes).reshape(-1))
    if not axes:
        if from_input and ctx.attr("noop_with_empty_axes", 0):
            return x
        axes = tuple(range(x.ndim))
    axes = tuple(sorted({a % x.ndim for a in axes})) if x.ndim else ()
    with np.errstate(all="ignore"):
        out = np.asarray(reducer(_work(x), axes))
    if not ctx.attr("keepdims", 1):
        out = out.reshape([d for i, d in enumerate(out.shape) if i not in axes])
    return out if out.dtype == x.dtype else out.astype(x.dtype)


def _register_reduce(op_type: str, input_since: int) -> None:
    """Register the attribute-axes kernel (opset 1) and the input-axes kernel."""
    reducer = _REDUCERS[op_type]

    def with_attr(ctx: NodeContext, x: np.ndarray) -> np.ndarray:
        return _reduce(ctx, reducer, x, None, from_input=False)

    def with_input(ctx: NodeContext, x: np.ndarray, axes: np.ndarray | None = None) -> np.ndarray:
        return _reduce(ctx, reducer, x, axes, from_input=True)

    for fn, since in ((with_attr, 1), (with_input, input_since)):
        fn.__name__ = f"{op_type.lower()}_v{since}"
        fn.__doc__ = f"{op_type} (axes {'attribute' if since == 1 else 'input'})."
        register(op_type, since=since)(fn)


for _op in _REDUCERS:
    _register_reduce(_op, 13 if _op == "ReduceSum" else 18)


def _arg(ctx: NodeContext, x: np.ndarray, fn: Callable[..., np.ndarray]) -> np.ndarray:
    x = _work(np.asarray(x))
    axis = ctx.attr("axis", 0) % max(x.ndim, 1)
    if ctx.attr("select_last_index", 0):
        idx = x.shape[axis] - 1 - fn(np.flip(x, axis), axis=axis)
    else:
        idx = fn(x, axis=axis)
    idx = np.asarray(idx, dtype=np.int64)
    return np.expand_dims(idx, axis) if ctx.attr("keepdims", 1) else idx


@register("ArgMax")
def argmax(ctx: NodeContext, x: np.ndarray) -> np.ndarray:
    """Index (int64) of the first (or last, ``select_last_index``) maximum along ``axis``."""
    return _arg(ctx, x, np.argmax)


@register("ArgMin")
def argmin(ctx: NodeContext, x: np.ndarray) -> np.ndarray:
    """Index (int64) of the first (or last, ``select_last_index``) minimum along ``axis``."""
    return _arg(ctx, x, np.argmin)


def _topk(ctx: NodeContext, x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """k largest (or smallest) along ``axis``, sorted; ties keep the lower index first."""
    x = np.asarray(x)
    axis = ctx.attr("axis", -1) % x.ndim
    work = _work(x)
    if ctx.attr("largest", 1):
        # stable descending order: sort the reversed axis ascending, then reverse back
        n = x.shape[axis]
        order = np.argsort(np.flip(work, axis), axis=axis, kind="stable")
        order = n - 1 - np.flip(order, axis)
    else:
        order = np.argsort(work, axis=axis, kind="stable")
    indices = np.take(order, np.arange(k), axis=axis).astype(np.int64)
    return np.take_along_axis(x, indices, axis=axis), indices


@register("TopK")
def topk_v1(ctx: NodeContext, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """TopK before opset 10: ``k`` is an attribute."""
    return _topk(ctx, x, int(ctx.required_attr("k")))


@register("TopK", since=10)
def topk(ctx: NodeContext, x: np.ndarray, k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """TopK from opset 10: ``K`` is a 1-element int64 input."""
    return _topk(ctx, x, int(np.asarray(k).reshape(-1)[0]))
