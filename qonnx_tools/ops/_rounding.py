"""Helpers shared by the quantizer ops: rounding modes, integer ranges, parameter checks.

Everything here works on NumPy arrays in the caller's float dtype and is exact:
no rounding mode is implemented with ``floor(x + 0.5)``-style tricks that would
round twice.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from qonnx_tools.errors import InvalidAttributeError
from qonnx_tools.node_context import NodeContext
from qonnx_tools.ops.base import upper_str

#: Every rounding mode of IntQuant, in the order of the spec's table.
ROUNDING_MODES: tuple[str, ...] = ("ROUND", "CEIL", "FLOOR", "UP", "DOWN", "HALF_UP", "HALF_DOWN")
#: The modes the Trunc and FloatQuant specs list.
BASIC_ROUNDING_MODES: tuple[str, ...] = ("ROUND", "CEIL", "FLOOR")
#: Largest integer bit width accepted for bit-width inputs (the widest DataType).
MAX_BITS = 64


def normalise_rounding_mode(value: str) -> str:
    """Upper-case a rounding-mode attribute; ``HALF_EVEN`` is another name for ``ROUND``."""
    mode = upper_str(value)
    return "ROUND" if mode == "HALF_EVEN" else mode


def where(ctx: NodeContext) -> str:
    """How error messages name a node."""
    return f"node {ctx.name!r} ({ctx.op_type})"


def work_dtype(x: np.ndarray) -> np.dtype:
    """The float dtype a quantizer computes in: X's own float dtype, float32 otherwise."""
    dtype = np.asarray(x).dtype
    return dtype if dtype.kind == "f" else np.dtype(np.float32)


def round_values(x: np.ndarray, mode: str) -> np.ndarray:
    """Round every element of a float array to an integer value with ``mode``.

    ROUND: nearest, ties to even.  CEIL / FLOOR: towards +inf / -inf.
    UP: away from zero.  DOWN: towards zero.
    HALF_UP: nearest, ties away from zero.  HALF_DOWN: nearest, ties towards zero.
    The result has x's dtype; NaN and infinities pass through unchanged.
    """
    if mode == "ROUND":
        return np.rint(x)
    if mode == "CEIL":
        return np.ceil(x)
    if mode == "FLOOR":
        return np.floor(x)
    if mode == "DOWN":
        return np.trunc(x)
    if mode == "UP":
        return np.copysign(np.ceil(np.abs(x)), x)
    if mode in ("HALF_UP", "HALF_DOWN"):
        whole = np.trunc(x)
        # x - trunc(x) is exactly representable, so the tie test below is exact
        with np.errstate(invalid="ignore"):  # inf - inf for infinite inputs
            frac = np.abs(x - whole)
            step = frac >= 0.5 if mode == "HALF_UP" else frac > 0.5
        return whole + np.copysign(step.astype(whole.dtype), x)
    raise ValueError(f"unknown rounding mode {mode!r}")


def int_bounds(signed: bool, narrow: bool, bits: np.ndarray | int) -> tuple[np.ndarray, np.ndarray]:
    """(min_int, max_int) of a ``bits``-bit integer, as float64 (exact up to 53 bits).

    signed: [-2**(b-1) (+1 when narrow), 2**(b-1) - 1]
    unsigned: [0, 2**b - 1 (-1 when narrow)]
    """
    b = np.asarray(bits, dtype=np.int64)
    if signed:
        half = np.ldexp(1.0, (b - 1).astype(np.int32))
        lo = -half + (1.0 if narrow else 0.0)
        hi = half - 1.0
    else:
        lo = np.zeros(b.shape)
        hi = np.ldexp(1.0, b.astype(np.int32)) - (2.0 if narrow else 1.0)
    return lo, hi


def bounds_in_dtype(lo: np.ndarray, hi: np.ndarray, dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    """Cast float64 bounds to ``dtype`` rounding inwards, so clamped values stay in range.

    (2**31 - 1 is not a float32; its float32 neighbour below is used as the upper bound.)
    """
    lo_c = np.asarray(lo).astype(dtype)
    hi_c = np.asarray(hi).astype(dtype)
    lo_c = np.where(lo_c < lo, np.nextafter(lo_c, dtype.type(np.inf)), lo_c).astype(dtype)
    hi_c = np.where(hi_c > hi, np.nextafter(hi_c, dtype.type(-np.inf)), hi_c).astype(dtype)
    return lo_c, hi_c


def integer_param(
    value: Any, ctx: NodeContext, what: str, *, minimum: int = 1, maximum: int | None = MAX_BITS
) -> np.ndarray:
    """An integer-valued input (bit width, exponent bias...) as an int64 array.

    It may arrive as an integer or float tensor; every element must be a finite
    integer in [minimum, maximum]. Raises InvalidAttributeError naming the node.
    """
    arr = np.asarray(value)
    ok = arr.size > 0 and arr.dtype.kind in "iuf"
    if ok and arr.dtype.kind == "f":
        ok = bool(np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)))
    if ok:
        ok = bool(np.all(arr >= minimum)) and (maximum is None or bool(np.all(arr <= maximum)))
    if not ok:
        bound = f"{minimum}..{maximum}" if maximum is not None else f">= {minimum}"
        shown = np.array2string(arr.ravel()[:8], separator=", ") if arr.dtype.kind in "iufb" else repr(arr)
        raise InvalidAttributeError(
            f"{where(ctx)}: {what} must be an integer in {bound}, got {shown}"
        )
    return arr.astype(np.int64)


def float_param(value: Any, dtype: np.dtype, ctx: NodeContext, what: str, *, nonzero: bool = False) -> np.ndarray:
    """A float input (scale, zero-point...) as an array of ``dtype``; finite, and nonzero if asked."""
    arr = np.asarray(value)
    if arr.dtype.kind not in "iuf":
        raise InvalidAttributeError(f"{where(ctx)}: {what} must be numeric, got dtype {arr.dtype}")
    arr = arr.astype(dtype, copy=False)
    if not np.all(np.isfinite(arr)) or (nonzero and np.any(arr == 0)):
        need = "finite and nonzero" if nonzero else "finite"
        raise InvalidAttributeError(
            f"{where(ctx)}: {what} must be {need}, got {np.array2string(arr.ravel()[:8], separator=', ')}"
        )
    return arr


def check_broadcast(ctx: NodeContext, x_shape: tuple[int, ...], **params: np.ndarray) -> None:
    """Raise InvalidAttributeError unless every parameter broadcasts to X's shape (not beyond)."""
    for name, arr in params.items():
        try:
            shape = np.broadcast_shapes(x_shape, np.shape(arr))
        except ValueError:
            shape = None
        if shape != tuple(x_shape):
            raise InvalidAttributeError(
                f"{where(ctx)}: {name} of shape {np.shape(arr)} does not broadcast to X's shape {tuple(x_shape)}"
            )


def constant(info_value: np.ndarray | None) -> np.ndarray | None:
    """A TensorInfo constant value as an array (None stays None)."""
    return None if info_value is None else np.asarray(info_value)


def all_equal(value: np.ndarray | None, target: float) -> bool:
    """True when a known constant equals ``target`` everywhere."""
    return value is not None and np.asarray(value).size > 0 and bool(np.all(np.asarray(value) == target))


# -- lowering to standard ONNX (used by the ops' ``lower_qcdq`` rules) -----------------------


def emit_rounding(b: Any, x: Any, mode: str) -> Any:
    """Standard ONNX nodes (through the lowering Builder ``b``) that round ``x`` like ``round_values``.

    Every composition is exact in float32: ROUND is ONNX Round (half to even),
    CEIL/FLOOR are Ceil/Floor, DOWN is ``Sign(x) * Floor(|x|)``, UP is
    ``Sign(x) * Ceil(|x|)``, and HALF_UP/HALF_DOWN compare the exact fraction
    ``|x| - Floor(|x|)`` with 0.5 (``>=`` / ``>``) and add the step to ``Floor(|x|)``
    before restoring the sign -- no ``Floor(x + 0.5)``, which rounds twice.
    """
    if mode == "ROUND":
        return b.op("Round", [x], "round")
    if mode == "CEIL":
        return b.op("Ceil", [x], "ceil")
    if mode == "FLOOR":
        return b.op("Floor", [x], "floor")
    sign = b.op("Sign", [x], "sign")
    mag = b.op("Abs", [x], "abs")
    if mode == "DOWN":
        return b.op("Mul", [sign, b.op("Floor", [mag], "floor_abs")], "round_down")
    if mode == "UP":
        return b.op("Mul", [sign, b.op("Ceil", [mag], "ceil_abs")], "round_up")
    if mode in ("HALF_UP", "HALF_DOWN"):
        whole = b.op("Floor", [mag], "floor_abs")
        frac = b.op("Sub", [mag, whole], "fraction")
        compare = "GreaterOrEqual" if mode == "HALF_UP" else "Greater"
        half = b.f32("half", 0.5)
        step = b.op("Cast", [b.op(compare, [frac, half], "past_half")], "step", to=1)  # 1 = FLOAT
        return b.op("Mul", [sign, b.op("Add", [whole, step], "rounded_abs")], "round_half")
    raise ValueError(f"unknown rounding mode {mode!r}")


def emit_int_bounds(b: Any, bits: Any, signed: bool, narrow: bool) -> tuple[Any, Any]:
    """(min_int, max_int) as float32 tensors computed at run time from a bit-width tensor.

    Uses ``Pow(2, b)``, exact for integer b in onnxruntime (checked by tests); for
    b > 24 the float32 bounds round to nearest where ``int_bounds``/``bounds_in_dtype``
    round inwards, so run-time bit widths above 24 are not bit-exact.
    """
    bf = b.op("Cast", [bits], "bits_f", to=1)
    two = b.f32("two", 2.0)
    if signed:
        half = b.op("Pow", [two, b.op("Sub", [bf, b.f32("one", 1.0)], "bits_minus_1")], "half_range")
        lo = b.op("Neg", [half], "min_int")
        if narrow:
            lo = b.op("Add", [lo, b.f32("one_lo", 1.0)], "min_int_narrow")
        hi = b.op("Sub", [half, b.f32("one_hi", 1.0)], "max_int")
        return lo, hi
    full = b.op("Pow", [two, bf], "full_range")
    hi = b.op("Sub", [full, b.f32("offset", 2.0 if narrow else 1.0)], "max_int")
    lo = b.f32("min_int", 0.0)
    return lo, hi
