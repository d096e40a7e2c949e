"""Pad (modes constant/reflect/edge/wrap; pads as attribute before opset 11, as input from 11)."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from qonnx_tools.errors import InvalidAttributeError
from qonnx_tools.executor.registry import NodeContext, register

_MODES = {"constant": "constant", "reflect": "reflect", "edge": "edge", "wrap": "wrap"}


def pad_array(x: np.ndarray, pads: Sequence[int], mode: str, value: object = 0) -> np.ndarray:
    """Pad (negative pads crop) x by ``pads`` = [begin_0.., end_0..] in ONNX ``mode``."""
    n = x.ndim
    if len(pads) != 2 * n:
        raise InvalidAttributeError(f"Pad: {len(pads)} pads for a rank-{n} input")
    if mode not in _MODES:
        raise InvalidAttributeError(f"Pad: unknown mode {mode!r}")
    begin, end = [int(p) for p in pads[:n]], [int(p) for p in pads[n:]]
    crop = tuple(slice(max(0, -b), size - max(0, -e)) for b, e, size in zip(begin, end, x.shape))
    x = x[crop]
    widths = [(max(0, b), max(0, e)) for b, e in zip(begin, end)]
    if not any(b or e for b, e in widths):
        return x.copy()
    if mode == "constant":
        fill = np.asarray(value).astype(x.dtype) if x.dtype != object else value
        return np.pad(x, widths, mode="constant", constant_values=fill)
    return np.pad(x, widths, mode=_MODES[mode])


@register("Pad", since=1)
def pad_v1(ctx: NodeContext, x: np.ndarray) -> np.ndarray:
    """Pad-1: pads in the ``paddings`` attribute, fill ``value``."""
    return pad_array(x, ctx.required_attr("paddings"), ctx.attr("mode", "constant"), ctx.attr("value", 0.0))


@register("Pad", since=2)
def pad_v2(ctx: NodeContext, x: np.ndarray) -> np.ndarray:
    """Pad-2: pads in the ``pads`` attribute, fill ``value``."""
    return pad_array(x, ctx.required_attr("pads"), ctx.attr("mode", "constant"), ctx.attr("value", 0.0))


@register("Pad", since=11)
def pad_v11(
    ctx: NodeContext,
    x: np.ndarray,
    pads: np.ndarray,
    constant_value: np.ndarray | None = None,
    axes: np.ndarray | None = None,
) -> np.ndarray:
    """Pad-11+: pads (and optional constant_value, axes from opset 18) as inputs."""
    pads = [int(p) for p in np.asarray(pads).reshape(-1)]
    if axes is not None:
        chosen = [int(a) + x.ndim if int(a) < 0 else int(a) for a in np.asarray(axes).reshape(-1)]
        if len(pads) != 2 * len(chosen):
            raise InvalidAttributeError(f"node {ctx.name!r} (Pad): {len(pads)} pads for axes {chosen}")
        full = [0] * (2 * x.ndim)
        for i, axis in enumerate(chosen):
            full[axis], full[axis + x.ndim] = pads[i], pads[i + len(chosen)]
        pads = full
    value = 0 if constant_value is None or np.size(constant_value) == 0 else np.asarray(constant_value).reshape(-1)[0]
    return pad_array(x, pads, ctx.attr("mode", "constant"), value)
