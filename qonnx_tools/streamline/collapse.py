"""Collapsing chains of constant Mul/Add and splitting the sign off a Mul.

``collapse-repeated-ops``
    ``Mul(Mul(x, a), b) -> Mul(x, a * b)`` and ``Add(Add(x, a), b) -> Add(x, a + b)``
    (constants on either side). The first node stays when it has other consumers.
    A Mul by a pure {-1, +1} sign vector is not merged (it is on its way into integer
    weights; merging it back would undo ``factor-out-mul-sign``). Reassociation:
    agrees to an ulp, exact for powers of two.

``factor-out-mul-sign``
    ``Mul(x, a)`` with factors of both signs -> ``Mul(Mul(x, sign(a)), |a|)`` (exact:
    negation commutes with rounding). With ``require_absorbable`` (what ``streamline``
    uses) only when ``absorb-sign-mul-into-linear`` can take the sign into integer
    weights, so no node is added for nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qonnx_tools._ir import ir
from qonnx_tools.decline import Decline
from qonnx_tools.streamline._graph import Editor, RulePass, fits
from qonnx_tools.streamline.absorb import plan_sign_downward, plan_sign_upward
from qonnx_tools.streamline.thresholds import F32

F64 = np.float64


def is_pure_sign(c: np.ndarray) -> bool:
    """Only -1/+1 values, both present."""
    return c.size > 1 and bool(np.all(np.abs(c) == 1)) and bool(np.any(c < 0)) and bool(np.any(c > 0))


def _combine(op: str, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    out = a.astype(F64) * b.astype(F64) if op == "Mul" else a.astype(F64) + b.astype(F64)
    out = out.astype(F32)
    return out.reshape(()) if out.size == 1 else out


@dataclass
class CollapseRepeatedOps(RulePass, name="collapse-repeated-ops"):
    """Mul(Mul(x, a), b) -> Mul(x, a*b), Add(Add(x, a), b) -> Add(x, a+b) for constants; fan-out safe"""

    def visit(self, node: ir.Node, editor: Editor):
        split = editor.const_operand(node, ("Mul", "Add"))
        if split is None:
            return None
        m, b, b_idx = split
        found = editor.scaled(m, (node.op_type,))
        if found is None or b.dtype.kind != "f":
            return None
        first, x, a = found
        if node.op_type == "Mul" and (is_pure_sign(a) or is_pure_sign(b)):
            return Decline("one factor is a pure sign vector (kept for absorb-sign-mul-into-linear)")
        if not fits(a, x) or not fits(b, x):
            return Decline("constants would broadcast the tensor to a larger shape")
        combined = _combine(node.op_type, a, b)
        editor.set_input(node, 1 - b_idx, x)
        editor.set_input(node, b_idx, editor.initializer(combined, f"{node.name or node.op_type}_combined"))
        editor.drop_if_dead(first)
        return [node]


@dataclass
class FactorOutMulSign(RulePass, name="factor-out-mul-sign"):
    """Mul by a mixed-sign constant -> Mul by its sign then by its magnitude (exact); require_absorbable: only
    when the sign can go into integer MatMul/Conv weights"""

    require_absorbable: bool = False

    def visit(self, node: ir.Node, editor: Editor):
        split = editor.const_operand(node, ("Mul",))
        if split is None:
            return None
        x, a, a_idx = split
        if a.dtype.kind != "f" or not (np.any(a < 0) and np.any(a > 0)) or is_pure_sign(a):
            return None
        if not fits(a, x):
            return None
        sign = np.where(a < 0, F32(-1), F32(1)).astype(F32)
        if self.require_absorbable:
            up = plan_sign_upward(editor, x, sign)
            if isinstance(up, Decline):
                downs = [plan_sign_downward(editor, x, sign, u.node, u.idx) for u in node.outputs[0].uses()]
                if not downs or any(isinstance(d, Decline) for d in downs):
                    return Decline(f"sign cannot be absorbed into integer weights ({up.reason})")
        base = node.name or "mul"
        sign_node = ir.node("Mul", [x, editor.initializer(sign, f"{base}_sign")], name=editor.fresh(f"{base}_sign"))
        out = sign_node.outputs[0]
        out.name = editor.fresh(f"{base}_signed")
        out.type, out.shape = x.type, x.shape
        editor.insert_before(node, sign_node)
        editor.set_input(node, 1 - a_idx, out)
        editor.set_input(node, a_idx, editor.initializer(np.abs(a).astype(F32), f"{base}_magnitude"))
        return [sign_node, node]
