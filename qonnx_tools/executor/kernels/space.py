"""DepthToSpace and SpaceToDepth (modes DCR and CRD)."""

from __future__ import annotations

import numpy as np

from qonnx_tools.errors import InvalidAttributeError
from qonnx_tools.executor.registry import NodeContext, register


def _mode(ctx: NodeContext) -> str:
    """The node's mode (DCR by default)."""
    mode = ctx.attr("mode", "DCR")
    if mode not in ("DCR", "CRD"):
        raise InvalidAttributeError(f"node {ctx.name!r} ({ctx.op_type}): unknown mode {mode!r}")
    return mode


@register("DepthToSpace", since=1)
def depth_to_space(ctx: NodeContext, x: np.ndarray) -> np.ndarray:
    """Move blocks of channels into blocksize x blocksize spatial tiles."""
    bs = int(ctx.required_attr("blocksize"))
    n, c, h, w = x.shape
    if c % (bs * bs):
        raise InvalidAttributeError(f"node {ctx.name!r} (DepthToSpace): {c} channels not divisible by {bs}^2")
    if _mode(ctx) == "DCR":
        tmp = x.reshape(n, bs, bs, c // (bs * bs), h, w).transpose(0, 3, 4, 1, 5, 2)
    else:
        tmp = x.reshape(n, c // (bs * bs), bs, bs, h, w).transpose(0, 1, 4, 2, 5, 3)
    return tmp.reshape(n, c // (bs * bs), h * bs, w * bs)


@register("SpaceToDepth", since=1)
def space_to_depth(ctx: NodeContext, x: np.ndarray) -> np.ndarray:
    """Move blocksize x blocksize spatial tiles into channels (inverse of DepthToSpace)."""
    bs = int(ctx.required_attr("blocksize"))
    n, c, h, w = x.shape
    if h % bs or w % bs:
        raise InvalidAttributeError(f"node {ctx.name!r} (SpaceToDepth): spatial {h}x{w} not divisible by {bs}")
    tmp = x.reshape(n, c, h // bs, bs, w // bs, bs)
    order = (0, 3, 5, 1, 2, 4) if _mode(ctx) == "DCR" else (0, 1, 3, 5, 2, 4)
    return tmp.transpose(order).reshape(n, c * bs * bs, h // bs, w // bs)
