"""IntQuant (formerly ``Quant``): uniform integer quantization with scale and zero-point."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from qonnx_tools.datatypes import DataType
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
    work_dtype,
)
from qonnx_tools.ops.base import AttrSpec, InputSpec, QonnxOp, TensorInfo


@register_op
class IntQuant(QonnxOp):
    """Quantize X to ``bitwidth``-bit integers and return the dequantized values.

    ``q = clamp(rounding_mode(X / scale + zeropt), min_int, max_int)`` and
    ``Y = (q - zeropt) * scale``. Clamping before or after rounding gives the same
    result because the bounds are integers.

    Integer range for b bits:
    signed ``[-2**(b-1), 2**(b-1) - 1]``, with ``narrow`` the minimum is raised by one;
    unsigned ``[0, 2**b - 1]``, with ``narrow`` the maximum is lowered by one (the
    spec's max_int formula applies ``narrow`` to unsigned ranges as well).

    Decisions:

    * ``narrow`` defaults to 0, as the spec says (Brevitas always writes it).
    * 1-bit ranges are accepted as the formulas give them: signed 1-bit is {-1, 0}
      (two's complement, DataType INT1), signed narrow 1-bit and unsigned narrow
      1-bit are {0}. Those quantizers are degenerate but well defined; refusing
      them would reject files that other QONNX tools run. Bipolar {-1, +1}
      quantization is BipolarQuant's job.
    * ``bitwidth`` may be an integer or float tensor (scalar or broadcastable);
      every element must be an integer in 1..64, otherwise InvalidAttributeError.
    * ``scale`` must be finite and nonzero, ``zeropt`` finite; both broadcast to X.
    * Arithmetic is done in X's float dtype (float32 for float32 X), in the same
      order as Brevitas (divide, add zero-point, round, clamp, subtract, multiply),
      so results match Brevitas' float32 outputs bit for bit. Non-float X is
      computed in float32.
    * ``rounding_mode`` is case-insensitive; ``HALF_EVEN`` is accepted as ROUND.
    """

    name = "IntQuant"
    aliases = ("Quant",)
    inputs = (
        InputSpec("X", "tensor to quantize"),
        InputSpec("scale", "scale factor, scalar or broadcastable to X"),
        InputSpec("zeropt", "zero-point, scalar or broadcastable to X"),
        InputSpec("bitwidth", "number of bits, a positive integer (int or float tensor)"),
    )
    attributes = (
        AttrSpec("signed", int, 1, allowed=(0, 1), doc="1: signed integer range"),
        AttrSpec("narrow", int, 0, allowed=(0, 1), doc="1: drop the most negative (signed) / largest (unsigned) value"),
        AttrSpec(
            "rounding_mode",
            str,
            "ROUND",
            allowed=ROUNDING_MODES,
            normalise=normalise_rounding_mode,
            doc="ROUND (half to even), CEIL, FLOOR, UP, DOWN, HALF_UP, HALF_DOWN",
        ),
    )

    @classmethod
    def execute(cls, ctx: NodeContext, *inputs: np.ndarray | None) -> np.ndarray:
        x, scale, zeropt, bitwidth = inputs
        dtype = work_dtype(x)
        x = np.asarray(x).astype(dtype, copy=False)
        scale = float_param(scale, dtype, ctx, "scale", nonzero=True)
        zeropt = float_param(zeropt, dtype, ctx, "zeropt")
        bits = integer_param(bitwidth, ctx, "bitwidth", minimum=1, maximum=MAX_BITS)
        check_broadcast(ctx, x.shape, scale=scale, zeropt=zeropt, bitwidth=bits)
        lo, hi = bounds_in_dtype(*int_bounds(bool(ctx.attrs["signed"]), bool(ctx.attrs["narrow"]), bits), dtype)
        q = np.asarray(x / scale)
        q += zeropt
        q = np.asarray(round_values(q, ctx.attrs["rounding_mode"]))
        np.clip(q, lo, hi, out=q)
        q -= zeropt
        q *= scale
        return q

    @classmethod
    def infer_datatypes(cls, ctx: NodeContext, inputs: Sequence[TensorInfo]) -> list[DataType | None]:
        """INTb/UINTb when scale is 1 and zero-point 0 (constants), SCALEDINT<b> otherwise.

        b is the (largest) constant bit width; unknown bit width gives None. A narrow
        signed range is still annotated INTb (its values are a subset).
        """
        bits_value = constant(inputs[3].value) if len(inputs) > 3 else None
        if bits_value is None:
            return [None]
        bits = int(integer_param(bits_value, ctx, "bitwidth", minimum=1, maximum=MAX_BITS).max())
        if all_equal(inputs[1].value, 1.0) and all_equal(inputs[2].value, 0.0):
            return [DataType.int(bits, signed=bool(ctx.attrs["signed"]))]
        return [DataType.scaled_int(bits)]
