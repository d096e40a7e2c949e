"""div-to-mul: ``x / c`` -> ``x * (1/c)`` for a floating-point constant ``c`` (see
_arith_canonical.py for what counts as a constant, operand order, legacy opsets and
the new initializer).

``c`` without zeros, whose reciprocal is a finite normal number. **Not
bit-exact**: ``x * RN(1/c)`` can differ from ``RN(x / c)`` in the last bit (about
one ulp; at most ~1.5 ulp), except when ``c`` is a power of two (then ``1/c`` is
exact and so is the result). With ``exact_only`` only such exactly-invertible
constants are converted -- use it when a quantizer follows and ties must not
move. Integer Div (which truncates) is never converted.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qonnx_tools._ir import ir
from qonnx_tools.decline import Decline
from qonnx_tools.passes._arith_canonical import ConstantOperandRule, is_float, run_rule
from qonnx_tools.passes.base import PassResult, QonnxPass


def reciprocal_constant(c: np.ndarray, *, exact_only: bool = False) -> np.ndarray | Decline:
    """``RN(1/c)`` in c's dtype, or the reason why Div by ``c`` must stay a Div."""
    dtype = np.dtype(c.dtype)
    if not is_float(dtype):
        return Decline(f"integer division ({dtype}) truncates; x * (1/c) is not equivalent")
    wide = c.astype(np.float64)
    if np.any(wide == 0):
        return Decline("constant divisor contains zero")
    # 1/c in float64 then one rounding to the dtype: correctly rounded (53 >= 2*24 + 2).
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        recip64 = 1.0 / wide
        recip = recip64.astype(dtype)
    back = recip.astype(np.float64)
    finite = np.isfinite(wide)
    if np.any(finite & ~np.isfinite(back)):
        return Decline("1/c overflows the constant's type")
    tiny = float(_finfo(dtype).tiny)
    if np.any(finite & (back != 0) & (np.abs(back) < tiny)):
        return Decline("1/c is subnormal in the constant's type (precision loss)")
    if exact_only and np.any(finite & (back * wide != 1.0)):
        return Decline("1/c is not exact (exact_only: only powers of two are converted)")
    return recip


def _finfo(dtype: np.dtype):
    """``finfo`` for NumPy and ml_dtypes float types (bfloat16 etc.)."""
    try:
        return np.finfo(dtype)
    except (TypeError, ValueError):
        import ml_dtypes

        return ml_dtypes.finfo(dtype)


@dataclass
class DivToMul(QonnxPass, name="div-to-mul"):
    """x / c (float constant c, no zeros) -> x * (1/c); rounding 1/c can change the last ulp (exact_only=true:
    powers of two only); integer Div never converted

    Not bit-exact: 1/c is rounded once, so a result can differ from x / c in the
    last bit (~1 ulp) unless c is a power of two. ``exact_only`` converts only
    exactly-invertible constants (powers of two).
    """

    exact_only: bool = False

    def call(self, model: ir.Model) -> PassResult:
        exact = self.exact_only

        def transform(c: np.ndarray) -> np.ndarray | Decline:
            return reciprocal_constant(c, exact_only=exact)

        modified = run_rule(model, lambda names: ConstantOperandRule("Div", "Mul", transform, names, self, "_recip"))
        return PassResult(model, modified)
