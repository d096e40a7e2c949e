"""Residual joins, Concat and Split: moving scales past ops with several streams.

``move-scale-past-join``
    ``Add(x1 * c, x2 * c) -> Add(x1, x2) * c`` (also Sub) when both operands are
    scaled by equal constants (after broadcasting) -- a residual join of two integer
    streams becomes an integer Add followed by one Mul. Different scales are refused
    with both values in the reason (an integer join would need a rescale).
    ``Add(x1 + b, x2) -> Add(x1, x2) + b`` moves a constant bias past the join.
    ``Concat(x1 * c1, ..., xk * ck) -> Concat(x1, ..., xk) * c`` when every operand
    is scaled: equal scalars, or constants along the concat axis (concatenated).
    ``Concat(x1 + b1, ...)`` likewise for Adds.
    A scaled operand that also feeds other consumers keeps its Mul for them.

``move-scale-past-split``
    ``Split(x * c)`` -> ``Split(x)`` and one ``Mul`` per output (the constant sliced
    along the split axis when it varies there), likewise for ``Add``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qonnx_tools._ir import ir
from qonnx_tools.decline import Decline
from qonnx_tools.streamline._graph import Editor, RulePass, expand_to_rank, fits, is_op, rank, varying_axes
from qonnx_tools.streamline.thresholds import F32


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    try:
        shape = np.broadcast_shapes(a.shape, b.shape)
    except ValueError:
        return False
    return bool(np.array_equal(np.broadcast_to(a, shape), np.broadcast_to(b, shape)))


def _show(c: np.ndarray) -> str:
    flat = c.reshape(-1)
    return f"{flat[0]:.6g}" if flat.size == 1 else f"{flat.size} values [{flat[0]:.4g}, ...]"


@dataclass
class MoveScalePastJoin(RulePass, name="move-scale-past-join"):
    """Add/Sub(x1*c, x2*c) -> (x1 op x2)*c (residual joins with matching scales), Add(x1+b, x2) -> Add(x1,
    x2)+b, Concat of scaled operands -> Concat then Mul; fan-out safe"""

    def visit(self, node: ir.Node, editor: Editor):
        if is_op(node, "Add") or is_op(node, "Sub"):
            return self._join(node, editor)
        if is_op(node, "Concat"):
            return self._concat(node, editor)
        return None

    def _join(self, node: ir.Node, editor: Editor):
        if len(node.inputs) != 2 or any(v is None for v in node.inputs):
            return None
        a, b = node.inputs
        if editor.const(a) is not None or editor.const(b) is not None or a is b:
            return None
        out = node.outputs[0]
        sa, sb = editor.scaled(a, ("Mul",)), editor.scaled(b, ("Mul",))
        if sa is not None and sb is not None:
            (na, xa, ca), (nb, xb, cb) = sa, sb
            if not _same(ca, cb):
                return Decline(f"operand scales differ ({_show(ca)} vs {_show(cb)}): not an integer join")
            if not fits(ca, xa) or not fits(cb, xb):
                return Decline("scales broadcast the operands")
            c = ca if ca.size >= cb.size else cb
            editor.set_input(node, 0, xa)
            editor.set_input(node, 1, xb)
            new = editor.insert_after_value(out, "Mul", c.astype(F32), f"{node.name or 'join'}_scale")
            editor.drop_if_dead(na)
            editor.drop_if_dead(nb)
            return [node, new, xa.producer(), xb.producer()]
        for idx in (0, 1):
            found = editor.scaled(node.inputs[idx], ("Add",))
            if found is None:
                continue
            add, x, bias = found
            if not fits(bias, x):
                continue
            if node.op_type == "Sub" and idx == 1:
                bias = -bias
            editor.set_input(node, idx, x)
            new = editor.insert_after_value(out, "Add", bias.astype(F32), f"{node.name or 'join'}_bias")
            editor.drop_if_dead(add)
            return [node, new, x.producer()]
        if (sa is None) != (sb is None):
            return Decline("only one operand is scaled")
        return None

    def _concat(self, node: ir.Node, editor: Editor):
        inputs = list(node.inputs)
        if not inputs or any(v is None for v in inputs):
            return None
        for kind in ("Mul", "Add"):
            found = [editor.scaled(v, (kind,)) for v in inputs]
            if not all(f is not None for f in found):
                continue
            consts = [f[2] for f in found]
            out = node.outputs[0]
            if all(c.size == 1 for c in consts) and all(_same(consts[0], c) for c in consts):
                c_after = consts[0].reshape(()).astype(F32)
            else:
                r = rank(out)
                if r is None:
                    return Decline("rank unknown (run infer-shapes)")
                axis = node.attributes.get_int("axis", 0) % r
                parts = []
                for (prod, x, c) in found:
                    if x.shape is None or not isinstance(x.shape[axis], int):
                        return Decline("operand sizes along the concat axis unknown")
                    cf = expand_to_rank(c, r)
                    if cf is None or not set(varying_axes(cf)) <= {axis}:
                        return Decline(f"{kind} constants vary along a non-concat axis")
                    shape = [1] * r
                    shape[axis] = int(x.shape[axis])
                    parts.append(np.broadcast_to(cf, shape))
                c_after = np.concatenate(parts, axis=axis).astype(F32)
            for idx, (prod, x, c) in enumerate(found):
                if not fits(c, x):
                    return Decline("constants broadcast the operands")
            producers = []
            for idx, (prod, x, c) in enumerate(found):
                editor.set_input(node, idx, x)
                producers.append(prod)
            new = editor.insert_after_value(out, kind, c_after, f"{node.name or 'concat'}_{kind.lower()}")
            for prod in producers:
                editor.drop_if_dead(prod)
            return [node, new] + [x.producer() for (_, x, _) in found]
        return None


def _split_sizes(node: ir.Node, editor: Editor, axis: int, total: int | None) -> list[int] | None:
    split = node.attributes.get_ints("split")  # Split < 13
    if len(node.inputs) > 1 and node.inputs[1] is not None:
        split = editor.const(node.inputs[1])
    if split is not None:
        return [int(s) for s in np.asarray(split).reshape(-1)]
    if total is None:
        return None
    n = len(node.outputs)
    if total % n == 0:
        return [total // n] * n
    chunk = -(-total // n)
    return [chunk] * (n - 1) + [total - chunk * (n - 1)]


@dataclass
class MoveScalePastSplit(RulePass, name="move-scale-past-split"):
    """Mul/Add by a constant in front of a Split -> one Mul/Add per Split output (constant sliced)"""

    def visit(self, node: ir.Node, editor: Editor):
        if not is_op(node, "Split") or not node.inputs or node.inputs[0] is None:
            return None
        found = editor.scaled(node.inputs[0], ("Mul", "Add"))
        if found is None:
            return None
        prod, x, c = found
        if not fits(c, x):
            return Decline("constant broadcasts the input")
        r = rank(x)
        pieces: list[np.ndarray]
        if c.size == 1:
            pieces = [c.reshape(()).astype(F32)] * len(node.outputs)
        else:
            if r is None or x.shape is None:
                return Decline("rank unknown (run infer-shapes)")
            axis = node.attributes.get_int("axis", 0) % r
            cf = expand_to_rank(c, r)
            if axis not in varying_axes(cf):
                pieces = [cf.astype(F32)] * len(node.outputs)
            else:
                total = x.shape[axis] if isinstance(x.shape[axis], int) else None
                sizes = _split_sizes(node, editor, axis, total)
                if sizes is None or sum(sizes) != cf.shape[axis]:
                    return Decline("split sizes unknown")
                bounds = np.cumsum([0] + sizes)
                pieces = [np.take(cf, np.arange(bounds[i], bounds[i + 1]), axis=axis).astype(F32) for i in range(len(sizes))]
        editor.set_input(node, 0, x)
        new_nodes = []
        for out, piece in zip(node.outputs, pieces):
            if out.uses() or out.is_graph_output():
                new_nodes.append(editor.insert_after_value(out, prod.op_type, piece, f"{node.name or 'split'}_{prod.op_type.lower()}"))
        editor.drop_if_dead(prod)
        return [node] + new_nodes + [x.producer()]
