"""FloatQuant: quantize to an arbitrary signed minifloat format (sign, exponent, mantissa bits)."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from qonnx_tools.datatypes import DataType
from qonnx_tools.errors import InvalidAttributeError, InvalidDataTypeError
from qonnx_tools.executor.registry import NodeContext
from qonnx_tools.ops import register_op
from qonnx_tools.ops._rounding import (
    BASIC_ROUNDING_MODES,
    all_equal,
    bounds_in_dtype,
    check_broadcast,
    constant,
    float_param,
    integer_param,
    normalise_rounding_mode,
    round_values,
    work_dtype,
)
from qonnx_tools.ops.base import AttrSpec, InputSpec, QonnxOp, TensorInfo

#: exponent widths beyond this overflow every float format used for computation
_MAX_EXPONENT_BITS = 11
_MAX_MANTISSA_BITS = 52


def format_max(e: np.ndarray, m: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """Largest magnitude of FLOAT<e,m,bias> with every code used for numbers (float64).

    All exponent bits set, all mantissa bits set: ``(2 - 2**-m) * 2**(2**e - 1 - bias)``.
    """
    top = (np.left_shift(1, e.astype(np.int64)) - 1 - bias).astype(np.int32)
    significand = 2.0 - np.ldexp(1.0, (-m).astype(np.int32))
    with np.errstate(over="ignore"):
        return np.ldexp(significand, top)


@register_op
class FloatQuant(QonnxOp):
    """Round X / scale to the nearest value of a signed minifloat, clamp, and rescale.

    For ``xs = X / scale``: ``E = floor(log2|xs|)`` (exactly, from the binary
    exponent), raised to at least ``1 - exponent_bias`` (the subnormal range shares
    the smallest normal exponent); the quantization step there is ``2**(E - m)``,
    so ``q = rounding_mode(xs / 2**(E - m)) * 2**(E - m)``. ``q`` is clamped to
    ``±M`` with ``M = min(max_val, (2 - 2**-m) * 2**(2**e - 1 - bias))`` and
    ``Y = q * scale``. Power-of-two scalings are done with ldexp and are exact;
    arithmetic is in X's float dtype (float32 for non-float X).

    Parameters may be scalars or broadcast to X. ``exponent_bitwidth`` must be an
    integer in 1..11, ``mantissa_bitwidth`` in 0..52 and ``exponent_bias`` an
    integer (any sign); ``scale`` finite and nonzero. ``max_val`` may be omitted
    (then ``M`` is the format's own maximum).

    Attributes: ``has_infinity`` (Brevitas writes ``has_inf``; both are read),
    ``has_nan`` and ``has_subnormal`` describe the format for backends.
    ``has_subnormal`` does not change execution (the spec defines the computation
    with subnormals). ``saturation`` does:

    * ``saturation=1`` (default): values beyond ``±M`` (including ±inf inputs) clamp to ``±M``.
    * ``saturation=0``: values that round beyond ``±M`` become ``±inf`` when
      ``has_infinity=1``, otherwise ``NaN`` when ``has_nan=1`` (±inf inputs become
      NaN too). A non-saturating format with neither infinity nor NaN cannot
      encode an overflow at all; such a node is refused with InvalidAttributeError
      (as the reference implementation does).

    NaN inputs stay NaN. ``rounding_mode`` is ROUND (half to even), CEIL or FLOOR.
    """

    name = "FloatQuant"
    inputs = (
        InputSpec("X", "tensor to quantize"),
        InputSpec("scale", "scale factor, scalar or broadcastable to X"),
        InputSpec("exponent_bitwidth", "exponent bits e"),
        InputSpec("mantissa_bitwidth", "mantissa bits m"),
        InputSpec("exponent_bias", "exponent bias"),
        InputSpec("max_val", "largest representable magnitude", optional=True),
    )
    attributes = (
        AttrSpec("has_infinity", int, 0, allowed=(0, 1), doc="the format encodes ±inf"),
        AttrSpec("has_nan", int, 0, allowed=(0, 1), doc="the format encodes NaN"),
        AttrSpec("has_subnormal", int, 1, allowed=(0, 1), doc="the format has subnormals (informative)"),
        AttrSpec("saturation", int, 1, allowed=(0, 1), doc="1: clamp overflow to ±max_val"),
        AttrSpec(
            "rounding_mode",
            str,
            "ROUND",
            allowed=BASIC_ROUNDING_MODES,
            normalise=normalise_rounding_mode,
            doc="ROUND (half to even), CEIL or FLOOR; case-insensitive",
        ),
    )

    @classmethod
    def resolve_attributes(cls, raw: Mapping[str, Any], where: str) -> dict[str, Any]:
        """As the base class, plus: ``has_inf`` is read as ``has_infinity``, and a
        non-saturating format without infinity or NaN is refused."""
        raw = dict(raw)
        if "has_inf" in raw and "has_infinity" not in raw:
            raw["has_infinity"] = raw["has_inf"]
        attrs = super().resolve_attributes(raw, where)
        if not attrs["saturation"] and not (attrs["has_infinity"] or attrs["has_nan"]):
            raise InvalidAttributeError(
                f"{where}: saturation=0 needs has_infinity=1 or has_nan=1 to represent overflow"
            )
        return attrs

    @classmethod
    def _format(cls, ctx: NodeContext, e: Any, m: Any, bias: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        e_arr = integer_param(e, ctx, "exponent_bitwidth", minimum=1, maximum=_MAX_EXPONENT_BITS)
        m_arr = integer_param(m, ctx, "mantissa_bitwidth", minimum=0, maximum=_MAX_MANTISSA_BITS)
        b_arr = integer_param(bias, ctx, "exponent_bias", minimum=-(2**20), maximum=2**20)
        return e_arr, m_arr, b_arr

    @classmethod
    def execute(cls, ctx: NodeContext, *inputs: np.ndarray | None) -> np.ndarray:
        x, scale, e, m, bias = inputs[:5]
        max_val = inputs[5] if len(inputs) > 5 else None
        dtype = work_dtype(x)
        x = np.asarray(x).astype(dtype, copy=False)
        scale = float_param(scale, dtype, ctx, "scale", nonzero=True)
        e, m, bias = cls._format(ctx, e, m, bias)
        limit = format_max(e, m, bias)
        if max_val is not None:
            limit = np.minimum(limit, np.asarray(max_val, dtype=np.float64))
        check_broadcast(ctx, x.shape, scale=scale, exponent_bitwidth=e, mantissa_bitwidth=m,
                        exponent_bias=bias, max_val=limit)
        _, hi = bounds_in_dtype(-limit, limit, dtype)

        xs = np.asarray(x / scale)
        _, binary_exp = np.frexp(xs)  # xs = f * 2**binary_exp, 0.5 <= |f| < 1
        step_exp = (np.maximum(binary_exp - 1, 1 - bias) - m).astype(np.int32)
        q = np.asarray(np.ldexp(round_values(np.ldexp(xs, -step_exp), ctx.attrs["rounding_mode"]), step_exp),
                       dtype=dtype)
        del xs, binary_exp, step_exp

        if ctx.attrs["saturation"]:
            np.clip(q, -hi, hi, out=q)
        else:
            over = q > hi
            under = q < -hi
            if ctx.attrs["has_infinity"]:
                q[over] = np.inf
                q[under] = -np.inf
            else:
                q[over | under] = np.nan
        q *= scale
        return q

    @classmethod
    def infer_datatypes(cls, ctx: NodeContext, inputs: Sequence[TensorInfo]) -> list[DataType | None]:
        """FLOAT<e,m,bias> when scale is a constant 1 and e, m, bias are constant and uniform.

        None otherwise, and None for non-saturating nodes (their outputs may be ±inf/NaN,
        which no DataType admits).
        """
        values = [constant(info.value) for info in inputs[2:5]]
        if len(values) < 3 or any(v is None for v in values) or not ctx.attrs["saturation"]:
            return [None]
        if not all_equal(inputs[1].value, 1.0):
            return [None]
        e, m, bias = cls._format(ctx, *values)
        if any(np.unique(a).size != 1 for a in (e, m, bias)):
            return [None]
        try:
            return [DataType.minifloat(int(e.flat[0]), int(m.flat[0]), int(bias.flat[0]))]
        except InvalidDataTypeError:
            return [None]
