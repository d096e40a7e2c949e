"""sub-to-add: ``x - c`` -> ``x + (-c)`` for a constant ``c`` (see _arith_canonical.py for
what counts as a constant, operand order, legacy opsets and the new initializer).

Float ``c``, or signed-integer ``c`` without the type's minimum (whose negation
overflows). Unsigned integers are left alone. ``-c`` is exact, so results are
bit-identical.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qonnx_tools._ir import ir
from qonnx_tools.decline import Decline
from qonnx_tools.passes._arith_canonical import ConstantOperandRule, is_float, run_rule
from qonnx_tools.passes.base import PassResult, QonnxPass


def negate_constant(c: np.ndarray) -> np.ndarray | Decline:
    """``-c`` in c's dtype, or the reason why it cannot be represented exactly."""
    dtype = np.dtype(c.dtype)
    if is_float(dtype):
        return np.negative(c)
    if dtype.kind == "i":
        if c.size and np.any(c == np.iinfo(dtype).min):
            return Decline(f"constant holds {np.iinfo(dtype).min}, whose negation overflows {dtype}")
        return np.negative(c)
    if dtype.kind == "u":
        return Decline(f"unsigned constant ({dtype}) has no negation")
    return Decline(f"constant of type {dtype} is not numeric")


@dataclass
class SubToAdd(QonnxPass, name="sub-to-add"):
    """x - c (constant c) -> x + (-c); exact; unsigned / INT_MIN constants kept"""

    def call(self, model: ir.Model) -> PassResult:
        modified = run_rule(
            model, lambda names: ConstantOperandRule("Sub", "Add", negate_constant, names, self, "_neg")
        )
        return PassResult(model, modified)
