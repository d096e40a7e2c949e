"""Trunc: drop least-significant bits of an integer-valued quantized tensor (versions 1 and 2)."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from qonnx_tools.datatypes import DataType
from qonnx_tools.errors import InvalidAttributeError
from qonnx_tools.executor.registry import NodeContext
from qonnx_tools.ops import register_op
from qonnx_tools.ops._rounding import (
    MAX_BITS,
    ROUNDING_MODES,
    all_equal,
    bounds_in_dtype,
    check_broadcast,
    constant,
    float_param,
    int_bounds,
    integer_param,
    normalise_rounding_mode,
    round_values,
    where,
    work_dtype,
)
from qonnx_tools.ops.base import AttrSpec, InputSpec, QonnxOp, TensorInfo

_ROUNDING = AttrSpec(
    "rounding_mode",
    str,
    "FLOOR",
    allowed=ROUNDING_MODES,
    normalise=normalise_rounding_mode,
    doc="how the truncated value is rounded; case-insensitive",
)


def _to_int_grid(x: np.ndarray, scale: np.ndarray, zeropt: np.ndarray) -> np.ndarray:
    """``rint(X / scale + zeropt)``: the integer the input represents (cleans float error)."""
    y = np.asarray(x / scale)
    y += zeropt
    return np.asarray(np.rint(y))


@register_op
class Trunc(QonnxOp):
    """Trunc version 1: shift out ``in_bitwidth - out_bitwidth`` low bits.

    ``v = rint(X / scale + zeropt)`` (ties to even), ``t = rounding_mode(v / 2**(in_bitwidth - out_bitwidth))``,
    ``Y = (t - zeropt) * scale``.

    As the version-1 spec defines it, the result is *not* clamped and is rescaled
    with the input ``scale`` (not ``scale * 2**(in - out)``): with scale 1, an
    8-bit input truncated to 4 bits gives ``floor(v / 16)``. Version 2 fixes the
    output scale.

    The bit widths may be int or float tensors holding integers in 1..64. The spec
    lists ROUND, CEIL and FLOOR; the other IntQuant modes (UP, DOWN, HALF_UP,
    HALF_DOWN) are accepted too, with the same meaning. Arithmetic is in X's float
    dtype; the division by the power of two is exact.
    """

    name = "Trunc"
    since_version = 1
    inputs = (
        InputSpec("X", "tensor to truncate"),
        InputSpec("scale", "scale factor of the input"),
        InputSpec("zeropt", "zero-point of the input"),
        InputSpec("in_bitwidth", "bits of the input integers"),
        InputSpec("out_bitwidth", "bits kept"),
    )
    attributes = (_ROUNDING,)

    @classmethod
    def execute(cls, ctx: NodeContext, *inputs: np.ndarray | None) -> np.ndarray:
        x, scale, zeropt, in_bitwidth, out_bitwidth = inputs
        dtype = work_dtype(x)
        x = np.asarray(x).astype(dtype, copy=False)
        scale = float_param(scale, dtype, ctx, "scale", nonzero=True)
        zeropt = float_param(zeropt, dtype, ctx, "zeropt")
        in_bits = integer_param(in_bitwidth, ctx, "in_bitwidth", maximum=MAX_BITS)
        out_bits = integer_param(out_bitwidth, ctx, "out_bitwidth", maximum=MAX_BITS)
        check_broadcast(ctx, x.shape, scale=scale, zeropt=zeropt, in_bitwidth=in_bits, out_bitwidth=out_bits)
        y = _to_int_grid(x, scale, zeropt)
        y = np.asarray(np.ldexp(y, (out_bits - in_bits).astype(np.int32)), dtype=dtype)
        y = np.asarray(round_values(y, ctx.attrs["rounding_mode"]))
        y -= zeropt
        y *= scale
        return y

    @classmethod
    def infer_datatypes(cls, ctx: NodeContext, inputs: Sequence[TensorInfo]) -> list[DataType | None]:
        """SCALEDINT<out_bitwidth> when out_bitwidth is constant (the sign of the input is unknown)."""
        bits = constant(inputs[4].value) if len(inputs) > 4 else None
        if bits is None:
            return [None]
        return [DataType.scaled_int(int(integer_param(bits, ctx, "out_bitwidth", maximum=MAX_BITS).max()))]


@register_op
class TruncV2(QonnxOp):
    """Trunc version 2: truncate to ``out_bitwidth`` bits with an explicit output scale.

    ``v = rint(X / scale + zeropt)``; ``k = rint(log2(out_scale / scale))`` (the
    truncation is a power-of-two rescale by ``2**k``); ``t = rounding_mode(clamp(v / 2**k,
    min_int, max_int))`` with the range of ``out_bitwidth`` bits given ``signed`` and
    ``narrow`` (as IntQuant's); ``Y = (t - zeropt / 2**k) * out_scale``.

    ``in_bitwidth`` is checked (integer in 1..64) but does not enter the arithmetic.
    ``out_scale / scale`` must be positive and finite. Rounding modes as in version 1.
    """

    name = "Trunc"
    since_version = 2
    inputs = (
        InputSpec("X", "tensor to truncate"),
        InputSpec("scale", "scale factor of the input"),
        InputSpec("zeropt", "zero-point of the input"),
        InputSpec("in_bitwidth", "bits of the input integers"),
        InputSpec("out_scale", "scale factor of the output"),
        InputSpec("out_bitwidth", "bits of the output integers"),
    )
    attributes = (
        _ROUNDING,
        AttrSpec("signed", int, 1, allowed=(0, 1), doc="1: the output range is signed"),
        AttrSpec("narrow", int, 0, allowed=(0, 1), doc="1: narrow output range"),
    )

    @classmethod
    def execute(cls, ctx: NodeContext, *inputs: np.ndarray | None) -> np.ndarray:
        x, scale, zeropt, in_bitwidth, out_scale, out_bitwidth = inputs
        dtype = work_dtype(x)
        x = np.asarray(x).astype(dtype, copy=False)
        scale = float_param(scale, dtype, ctx, "scale", nonzero=True)
        zeropt = float_param(zeropt, dtype, ctx, "zeropt")
        out_scale = float_param(out_scale, dtype, ctx, "out_scale", nonzero=True)
        integer_param(in_bitwidth, ctx, "in_bitwidth", maximum=MAX_BITS)
        out_bits = integer_param(out_bitwidth, ctx, "out_bitwidth", maximum=MAX_BITS)
        check_broadcast(ctx, x.shape, scale=scale, zeropt=zeropt, out_scale=out_scale, out_bitwidth=out_bits)
        ratio = out_scale.astype(np.float64) / scale.astype(np.float64)
        if not np.all(ratio > 0):
            raise InvalidAttributeError(f"{where(ctx)}: out_scale / scale must be positive")
        shift = np.rint(np.log2(ratio)).astype(np.int32)
        y = _to_int_grid(x, scale, zeropt)
        y = np.asarray(np.ldexp(y, -shift), dtype=dtype)
        lo, hi = bounds_in_dtype(*int_bounds(bool(ctx.attrs["signed"]), bool(ctx.attrs["narrow"]), out_bits), dtype)
        np.clip(y, lo, hi, out=y)
        y = np.asarray(round_values(y, ctx.attrs["rounding_mode"]))
        y -= np.asarray(np.ldexp(zeropt, -shift), dtype=dtype)
        y *= out_scale
        return y

    @classmethod
    def infer_datatypes(cls, ctx: NodeContext, inputs: Sequence[TensorInfo]) -> list[DataType | None]:
        """INTb/UINTb when out_scale is 1 and zeropt 0 (constants), SCALEDINT<b> otherwise; b = out_bitwidth."""
        bits = constant(inputs[5].value) if len(inputs) > 5 else None
        if bits is None:
            return [None]
        b = int(integer_param(bits, ctx, "out_bitwidth", maximum=MAX_BITS).max())
        if all_equal(inputs[4].value, 1.0) and all_equal(inputs[2].value, 0.0):
            return [DataType.int(b, signed=bool(ctx.attrs["signed"]))]
        return [DataType.scaled_int(b)]
