"""Channels-last wrappers of Conv, MaxPool and BatchNormalization (domain qonnx.custom_op.channels_last).

Models prepared for hls4ml keep activations as (N, *spatial, C). These nodes take and
produce channels-last tensors; their attributes are those of the standard ONNX op.
Conv weights are channels-last too, (M, *kernel, C/group), as in qonnx's own
definition of this domain (its executor transposes the first two inputs of a Conv)
and as hls4ml reads them; BatchNormalization parameters are per channel as usual.
Execution transposes X (and W) to channels-first, runs the executor's standard
kernel and transposes the result back, so the numerics are the standard op's.
"""

from __future__ import annotations

import math
from typing import ClassVar, Sequence

import numpy as np

from qonnx_tools._ir import ir
from qonnx_tools.domains import CHANNELS_LAST
from qonnx_tools.errors import InvalidAttributeError, UnsupportedOpError
from qonnx_tools.node_context import NodeContext
from qonnx_tools.ops import register_op
from qonnx_tools.ops._rounding import where
from qonnx_tools.ops.base import InputSpec, QonnxOp, TensorInfo

#: Opset at which the standard kernel is looked up (Conv v11, MaxPool v12, BatchNormalization v9).
STANDARD_OPSET = 13


def to_channels_first(rank: int) -> tuple[int, ...]:
    """Permutation (N, *spatial, C) -> (N, C, *spatial)."""
    return (0, rank - 1, *range(1, rank - 1))


def to_channels_last(rank: int) -> tuple[int, ...]:
    """Permutation (N, C, *spatial) -> (N, *spatial, C)."""
    return (0, *range(2, rank), 1)


class _ChannelsLastOp(QonnxOp):
    """Common execution and type inference; subclasses give the NCHW output shape."""

    domain = CHANNELS_LAST
    min_rank: ClassVar[int] = 3

    @classmethod
    def parameter_inputs(cls) -> tuple[str, ...]:
        """None: W, B and the normalisation parameters are the standard op's (no QONNX rules)."""
        return ()

    @classmethod
    def execute(cls, ctx: NodeContext, *inputs: np.ndarray | None) -> np.ndarray:
        # The one place ops/ reaches into the executor: the numerics are the standard op's, so
        # they run on the executor's standard kernel (imported here, at run time, because the
        # executor's engine imports qonnx_tools.ops).
        from qonnx_tools.executor.registry import lookup

        if ctx.n_outputs > 1:
            raise InvalidAttributeError(f"{where(ctx)}: channels-last {cls.name} has a single output")
        kernel = lookup(cls.name, STANDARD_OPSET)
        if kernel is None:
            raise UnsupportedOpError(f"{where(ctx)}: no standard {cls.name} kernel to run the channels-last op")
        x = np.asarray(inputs[0])
        if x.ndim < cls.min_rank:
            raise InvalidAttributeError(
                f"{where(ctx)}: channels-last {cls.name} needs X of rank >= {cls.min_rank} (N, ..., C), got {x.shape}"
            )
        inner = NodeContext(
            name=ctx.name,
            op_type=cls.name,
            domain="",
            opset=STANDARD_OPSET,
            attrs=ctx.attrs,
            n_outputs=1,
        )
        result = kernel(inner, np.transpose(x, to_channels_first(x.ndim)), *cls._channels_first_params(inputs[1:]))
        y = np.asarray(result if isinstance(result, np.ndarray) else result[0])
        return np.ascontiguousarray(np.transpose(y, to_channels_last(y.ndim)))

    @classmethod
    def infer_types(cls, ctx: NodeContext, inputs: Sequence[TensorInfo]) -> list[TensorInfo]:
        """X's element type; the standard op's NCHW output shape, permuted to channels-last."""
        x = inputs[0] if inputs else TensorInfo()
        if x.shape is None or len(x.shape) < cls.min_rank:
            return [TensorInfo(dtype=x.dtype)]
        dims = [_dim(d) for d in x.shape]
        first = [dims[i] for i in to_channels_first(len(dims))]
        out_first = cls._nchw_shape(ctx, first, inputs)
        out_last = [out_first[i] for i in to_channels_last(len(out_first))]
        return [TensorInfo(dtype=x.dtype, shape=ir.Shape(out_last))]

    @classmethod
    def _nchw_shape(cls, ctx: NodeContext, x: list[int | None], inputs: Sequence[TensorInfo]) -> list[int | None]:
        return list(x)

    @classmethod
    def _channels_first_params(cls, params: Sequence[np.ndarray | None]) -> list[np.ndarray | None]:
        """The standard op's parameter inputs (unchanged unless the layout differs)."""
        return list(params)


def _dim(d: object) -> int | None:
    return d if isinstance(d, int) else None


def _window_output(
    ctx: NodeContext, spatial: list[int | None], kernel: Sequence[int], ceil_mode: bool = False
) -> list[int | None]:
    """Output spatial sizes of a sliding window (Conv/MaxPool rules of the ONNX spec)."""
    n = len(spatial)
    strides = list(ctx.attr("strides", None) or [1] * n)
    dilations = list(ctx.attr("dilations", None) or [1] * n)
    pads = list(ctx.attr("pads", None) or [0] * (2 * n))
    auto_pad = ctx.attr("auto_pad", "NOTSET") or "NOTSET"
    out: list[int | None] = []
    for i, size in enumerate(spatial):
        if size is None:
            out.append(None)
            continue
        span = (kernel[i] - 1) * dilations[i] + 1
        if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            out.append(math.ceil(size / strides[i]))
            continue
        total = size if auto_pad == "VALID" else size + pads[i] + pads[i + n]
        rounding = math.ceil if ceil_mode else math.floor
        dim = rounding((total - span) / strides[i]) + 1
        if ceil_mode and auto_pad != "VALID" and (dim - 1) * strides[i] >= size + pads[i]:
            dim -= 1  # the last window must start inside the input or the left padding
        out.append(dim)
    return out


@register_op
class Conv(_ChannelsLastOp):
    """Channels-last Conv: X (N, *spatial, C), W (M, *kernel, C/group), optional B (M,); Y (N, *spatial', M)."""

    name = "Conv"
    inputs = (InputSpec("X"), InputSpec("W"), InputSpec("B", optional=True))

    @classmethod
    def _channels_first_params(cls, params: Sequence[np.ndarray | None]) -> list[np.ndarray | None]:
        w, *rest = params
        w = np.asarray(w)
        return [np.transpose(w, to_channels_first(w.ndim)), *rest]

    @classmethod
    def _nchw_shape(cls, ctx: NodeContext, x: list[int | None], inputs: Sequence[TensorInfo]) -> list[int | None]:
        w = inputs[1] if len(inputs) > 1 else TensorInfo()
        w_dims = [_dim(d) for d in w.shape] if w.shape is not None else None
        kernel = ctx.attr("kernel_shape", None) or (w_dims[1:-1] if w_dims is not None else None)
        if kernel is None or any(k is None for k in kernel):
            return [x[0], w_dims[0] if w_dims else None] + [None] * (len(x) - 2)
        return [x[0], w_dims[0] if w_dims else None] + _window_output(ctx, x[2:], list(kernel))


@register_op
class MaxPool(_ChannelsLastOp):
    """Channels-last MaxPool: X (N, *spatial, C) -> Y (N, *spatial', C); the Indices output is not offered."""

    name = "MaxPool"
    inputs = (InputSpec("X"),)

    @classmethod
    def _nchw_shape(cls, ctx: NodeContext, x: list[int | None], inputs: Sequence[TensorInfo]) -> list[int | None]:
        kernel = ctx.attr("kernel_shape", None)
        if kernel is None:
            return [x[0], x[1]] + [None] * (len(x) - 2)
        return [x[0], x[1]] + _window_output(ctx, x[2:], list(kernel), bool(ctx.attr("ceil_mode", 0)))


@register_op
class BatchNormalization(_ChannelsLastOp):
    """Channels-last BatchNormalization (inference): X (N, ..., C) with per-channel scale, B, mean, var."""

    name = "BatchNormalization"
    min_rank = 2
    inputs = (
        InputSpec("X"),
        InputSpec("scale"),
        InputSpec("B"),
        InputSpec("input_mean"),
        InputSpec("input_var"),
    )
