"""Passes that remove nodes computing one of their inputs unchanged.

- ``remove-identity``: ``Identity`` (onnx_ir's IdentityEliminationPass) and
  inference-mode ``Dropout`` whose mask output is unused.
- ``remove-noop-arith``: ``x*1``, ``1*x``, ``x+0``, ``0+x``, ``x-0``, ``x/1`` with a
  constant neutral operand that cannot change the result's shape or type.

When the removed node's output is a graph output, its name survives: the kept
value is renamed to it. A node is kept when that is impossible (the kept value
is a graph input, an initializer or another graph output).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from qonnx_tools._ir import common_passes, ir
from qonnx_tools.constants import constant_array
from qonnx_tools.domains import STANDARD, canonical_domain, opset_of
from qonnx_tools.passes._rewrite import bypass, can_bypass
from qonnx_tools.passes.base import PassResult, QonnxPass, register_pass

_HIDDEN_IDENTITY = "Identity::kept-by-remove-identity"


def _standard(node: ir.Node, op_type: str) -> bool:
    return node.op_type == op_type and canonical_domain(node.domain) == STANDARD


@dataclass
class RemoveIdentity(QonnxPass):
    """Remove Identity nodes and inference Dropout nodes (mask unused), keeping output names."""

    name: ClassVar[str] = "remove-identity"
    summary: ClassVar[str] = "remove Identity and inference-mode Dropout (unused mask); graph output names kept"

    def call(self, model: ir.Model) -> PassResult:
        modified = self._remove_identities(model)
        modified |= self._remove_dropouts(model)
        return PassResult(model, modified)

    @staticmethod
    def _remove_identities(model: ir.Model) -> bool:
        # onnx_ir's pass renames the input to the output's name when the output is a
        # graph output; if the input is a graph output too, that renames an output
        # of the model. Hide those nodes from it (they must stay) while it runs.
        hidden = [
            node
            for node in ir.traversal.RecursiveGraphIterator(model.graph)
            if _standard(node, "Identity")
            and len(node.inputs) == 1
            and len(node.outputs) == 1
            and not can_bypass(node.inputs[0], node.outputs[0])
        ]
        for node in hidden:
            node.op_type = _HIDDEN_IDENTITY
        try:
            result = common_passes.IdentityEliminationPass()(model)
        finally:
            for node in hidden:
                node.op_type = "Identity"
        return bool(result.modified)

    @staticmethod
    def _remove_dropouts(model: ir.Model) -> bool:
        opset = opset_of(model, STANDARD, 1)
        modified = False
        for node in list(ir.traversal.RecursiveGraphIterator(model.graph)):
            if not _standard(node, "Dropout") or not node.inputs or node.inputs[0] is None:
                continue
            if not _inference_dropout(node, opset):
                continue
            modified |= bypass(node, node.inputs[0], node.outputs[0])
        return modified


def _inference_dropout(node: ir.Node, opset: int) -> bool:
    """Dropout that passes its input through: no training mode (opset 12+: absent or constant False).

    Before opset 12 Dropout is treated as inference, as the executor does.
    """
    if opset >= 12 and len(node.inputs) > 2 and node.inputs[2] is not None:
        mode = constant_array(node.inputs[2], overridable=False)
        return mode is not None and not np.any(np.asarray(mode))
    return True


#: op -> (neutral value, operand positions that may hold it)
_NEUTRAL: dict[str, tuple[int, tuple[int, ...]]] = {
    "Add": (0, (0, 1)),
    "Mul": (1, (0, 1)),
    "Sub": (0, (1,)),
    "Div": (1, (1,)),
}


@dataclass
class RemoveNoopArith(QonnxPass):
    """Remove x*1, x+0, x-0, x/1 (constant on either side of Add/Mul) that keep x's shape and type."""

    name: ClassVar[str] = "remove-noop-arith"
    summary: ClassVar[str] = "remove x*1, x+0, x-0, x/1 with a constant neutral operand that keeps x's shape and type"

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
