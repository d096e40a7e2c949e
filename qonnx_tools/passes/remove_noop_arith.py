"""remove-noop-arith: remove ``x*1``, ``1*x``, ``x+0``, ``0+x``, ``x-0``, ``x/1`` with a
constant neutral operand that cannot change the result's shape or type.

When the removed node's output is a graph output, its name survives: the kept
value is renamed to it. A node is kept when that is impossible (the kept value
is a graph input, an initializer or another graph output).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qonnx_tools._ir import ir
from qonnx_tools.constants import constant_array
from qonnx_tools.domains import STANDARD, canonical_domain
from qonnx_tools.passes._rewrite import bypass
from qonnx_tools.passes.base import PassResult, QonnxPass

#: op -> (neutral value, operand positions that may hold it)
_NEUTRAL: dict[str, tuple[int, tuple[int, ...]]] = {
    "Add": (0, (0, 1)),
    "Mul": (1, (0, 1)),
    "Sub": (0, (1,)),
    "Div": (1, (1,)),
}


@dataclass
class RemoveNoopArith(QonnxPass, name="remove-noop-arith"):
    """remove x*1, x+0, x-0, x/1 with a constant neutral operand that keeps x's shape and type"""

    def call(self, model: ir.Model) -> PassResult:
        modified = False
        for node in list(ir.traversal.RecursiveGraphIterator(model.graph)):
            if canonical_domain(node.domain) != STANDARD or node.op_type not in _NEUTRAL:
                continue
            if len(node.inputs) != 2 or len(node.outputs) != 1 or None in node.inputs:
                continue
            neutral, positions = _NEUTRAL[node.op_type]
            out = node.outputs[0]
            for pos in positions:
                const, other = node.inputs[pos], node.inputs[1 - pos]
                array = constant_array(const, overridable=False)
                if array is None or not _all_equal(array, neutral):
                    continue
                if not _keeps_shape_and_type(other, array, out):
                    continue
                if bypass(node, other, out):
                    modified = True
                    break
        return PassResult(model, modified)


def _all_equal(array: np.ndarray, neutral: int) -> bool:
    if array.dtype.kind not in "biufc":
        try:
            array = array.astype(np.float64)  # ml_dtypes (bfloat16, float8): compare as float
        except (TypeError, ValueError):
            return False
    return bool(np.all(array == neutral))


def _keeps_shape_and_type(x: ir.Value, const: np.ndarray, out: ir.Value) -> bool:
    """True when ``x (op) const`` has exactly x's shape and element type."""
    try:
        const_dtype = ir.DataType.from_numpy(const.dtype)
    except Exception:
        return False
    if x.dtype is not None and x.dtype != const_dtype:
        return False
    if out.dtype is not None and out.dtype != (x.dtype or const_dtype):
        return False
    if const.ndim == 0:
        return True  # a scalar broadcasts to any shape without changing it
    if x.shape is None:
        return False
    dims = list(x.shape)
    if const.ndim > len(dims):
        return False
    for cdim, xdim in zip(reversed(const.shape), reversed(dims)):
        if cdim != 1 and not (isinstance(xdim, int) and xdim == cdim):
            return False
    return True
