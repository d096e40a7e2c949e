"""Shared core of ``to-channels-last`` (to_channels_last.py) and ``to-channels-first``
(to_channels_first.py): wrapping layout ops between Transposes and sinking Transposes.

``Layout.wrap`` puts a node between ``Transpose(before)`` and ``Transpose(after)``
(Conv weights follow the activations' layout: constant weights, and quantizers of
constant weights, are transposed in the initializers; other weights get a
Transpose node). Then the inserted Transposes are sunk towards the consumers:
through element-wise ops and activations (constant operands are permuted:
per-channel Quant scales of shape (C,1,1) become (1,1,1,C)), QONNX quantizers
(IntQuant/Quant, BipolarQuant, Trunc, FloatQuant), QuantizeLinear/DequantizeLinear
(``axis`` remapped), Concat (``axis`` remapped), Softmax (opset >= 13, ``axis``
remapped), nearest-mode Resize (scales/sizes/roi permuted), and multi-input ops
such as a residual Add when every run-time input carries the same Transpose. A
Transpose meeting its inverse cancels; two other Transposes in a row merge.
Transposes that find nothing to cancel stay (graph inputs and outputs keep their
NCHW layout). Works on branched graphs (a fan-out Transpose is sunk into each
consumer), on 1-D (N, C, L) and 2-D (N, C, H, W) convolutions; every new node gets
a unique name. Pure data movement: executor outputs are bit-identical.

One pass over the nodes plus a worklist over the Transposes, each moving strictly
downstream: linear in the graph size for chains (fan-out can copy a Transpose into
each branch).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from qonnx_tools._ir import ir
from qonnx_tools.constants import constant_array
from qonnx_tools.decline import Decline
from qonnx_tools.domains import QONNX, STANDARD, canonical_domain, opset_of
from qonnx_tools.ops.channels_last import to_channels_first, to_channels_last
from qonnx_tools.passes._rewrite import all_value_names, bypass, new_initializer, unique_name

#: Standard ops that exist as channels-last ops.
CHANNELS_LAST_OPS = ("Conv", "MaxPool", "BatchNormalization")

_UNARY = {
    "Relu", "LeakyRelu", "Sigmoid", "Tanh", "Elu", "Selu", "Celu", "HardSigmoid", "HardSwish", "Abs", "Neg", "Exp",
    "Log", "Sqrt", "Floor", "Ceil", "Round", "Sign", "Erf", "Gelu", "Identity", "Cast", "Softplus", "Softsign",
    "Reciprocal", "Not", "IsNaN", "IsInf", "Mish", "ThresholdedRelu", "Shrink",
}
#: Broadcasting ops: every input is data or a constant that broadcasts against it.
_BROADCAST = {
    "Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Sum", "Mean", "Equal", "Less", "Greater", "LessOrEqual",
    "GreaterOrEqual", "Where", "And", "Or", "Xor", "PRelu", "Mod", "Clip", "BitShift",
}
_QONNX_BROADCAST = {"IntQuant", "Quant", "BipolarQuant", "Trunc", "FloatQuant"}


def rank_of(value: ir.Value | None) -> int | None:
    """The rank of ``value``, None when unknown."""
    return None if value is None or value.shape is None else len(value.shape)


def perm_of(node: ir.Node) -> tuple[int, ...] | None:
    """The permutation of a standard Transpose (None: not one, or rank unknown for the default perm)."""
    if node.op_type != "Transpose" or canonical_domain(node.domain) != STANDARD:
        return None
    perm = node.attributes.get_ints("perm")
    if perm is None:
        rank = rank_of(node.inputs[0])
        return None if rank is None else tuple(reversed(range(rank)))
    return tuple(int(p) for p in perm)


def _inverse(perm: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(int(i) for i in np.argsort(perm))


def _permuted_shape(shape: ir.Shape | None, perm: tuple[int, ...]) -> ir.Shape | None:
    if shape is None or len(shape) != len(perm):
        return None
    dims = list(shape)
    return ir.Shape([dims[p] for p in perm])


@dataclass
class Layout:
    """One run: fresh names, the Transposes to sink, new constants."""

    model: ir.Model
    names: set[str]
    node_names: set[str]
    work: list[ir.Node] = field(default_factory=list)
    inserted: list[ir.Node] = field(default_factory=list)
    stale: list[ir.Value] = field(default_factory=list)
    opset: int = 13

    def node_name(self, base: str) -> str:
        return unique_name(base, self.node_names)

    def transpose(self, value: ir.Value, perm: tuple[int, ...], base: str, sink: bool = True) -> ir.Node:
        node = ir.node("Transpose", [value], attributes={"perm": list(perm)}, name=self.node_name(base))
        out = node.outputs[0]
        out.name = unique_name(f"{base}_out", self.names)
        out.type = value.type
        out.shape = _permuted_shape(value.shape, perm)
        out.meta.update(value.meta)
        if sink:
            self.work.append(node)
        self.inserted.append(node)
        return node

    # -- wrapping layout ops ------------------------------------------------------------------
    def wrap(self, node: ir.Node, domain: str, before: tuple[int, ...], after: tuple[int, ...]) -> None:
        """``node`` reads Transpose(X, before) and its output goes through Transpose(., after);
        ``domain`` is the domain the node gets (the channels-last domain or the standard one)."""
        graph = node.graph
        base = node.name or node.op_type
        x = node.inputs[0]
        t_in = self.transpose(x, before, f"{base}_in_transpose", sink=False)
        graph.insert_before(node, t_in)
        node.replace_input_with(0, t_in.outputs[0])
        if node.op_type == "Conv" and len(node.inputs) > 1 and node.inputs[1] is not None:
            self.relayout_weight(node, before, base)
        y = node.outputs[0]
        users = list(y.uses())
        was_output = y.is_graph_output()
        old_shape, old_meta = y.shape, dict(y.meta)
        node.domain = domain
        # The node's output now has the inner layout; the Transpose after it restores the old one.
        y.shape = _permuted_shape(old_shape, _inverse(after)) if old_shape is not None else None
        t_out = self.transpose(y, after, f"{base}_out_transpose")
        t_out.outputs[0].shape = old_shape
        t_out.outputs[0].meta.update(old_meta)
        graph.insert_after(node, t_out)
        self.reroute(y, t_out.outputs[0], users, was_output, "inner")

    def reroute(self, old: ir.Value, new: ir.Value, users, was_output: bool, suffix: str) -> None:
        """``users`` (taken before ``new``'s producer read ``old``) read ``new``; a graph output moves
        to ``new`` with its name (``old`` becomes ``<name>_<suffix>``)."""
        for user, index in users:
            user.replace_input_with(index, new)
        if was_output:
            outputs = old.graph.outputs
            for i, v in enumerate(outputs):
                if v is old:
                    outputs[i] = new
            name = old.name
            old.name = unique_name(f"{name}_{suffix}", self.names)
            new.name = name

    def relayout_weight(self, node: ir.Node, perm: tuple[int, ...], base: str) -> None:
        """Conv weights follow the activations' layout (channels_last Conv reads W as (M, *kernel, C/g)).

        A constant weight (or a quantizer of one) is transposed in the initializers;
        any other weight gets a Transpose node."""
        from qonnx_tools.passes.fold_transpose_into_initializer import fold_transpose
        from qonnx_tools.passes.move_transpose_into_weight_quant import move_transpose_into_quantizer

        t_w = self.transpose(node.inputs[1], perm, f"{base}_weight_transpose", sink=False)
        node.graph.insert_before(node, t_w)
        node.replace_input_with(1, t_w.outputs[0])
        if isinstance(move_transpose_into_quantizer(t_w, self.names), Decline) and t_w.inputs[0].is_initializer():
            fold_transpose(t_w)

    # -- sinking --------------------------------------------------------------------------------
    def run(self) -> None:
        while self.work:
            t = self.work.pop()
            if t.graph is None:
                continue
            perm = perm_of(t)
            if perm is None:
                continue
            for user, _ in list(t.outputs[0].uses()):
                if user.graph is None:
                    continue
                if perm_of(user) is not None:
                    self._combine(t, perm, user)
                else:
                    self._sink(t, perm, user)

    def _combine(self, t: ir.Node, perm: tuple[int, ...], user: ir.Node) -> None:
        """``user`` = Transpose(Transpose(x, perm), q): cancel (identity) or merge into one Transpose of x."""
        q = perm_of(user)
        if len(q) != len(perm):
            return
        composed = tuple(perm[i] for i in q)
        x = t.inputs[0]
        if composed == tuple(range(len(perm))):
            bypass(user, x, user.outputs[0])
            return
        user.replace_input_with(0, x)
        user.attributes["perm"] = ir.AttrInt64s("perm", list(composed))
        self.work.append(user)
        self.inserted.append(user)

    def _sink(self, t: ir.Node, perm: tuple[int, ...], c: ir.Node) -> None:
        """Rewrite ``c(..., Transpose(x, perm), ...)`` as ``Transpose(c'(..., x, ...), perm)`` when legal."""
        if len(c.outputs) != 1 or c.graph is not t.graph:
            return
        plan = self._plan(c, perm)
        if plan is None:
            return
        inputs, attrs = plan
        graph = c.graph
        base = c.name or c.op_type
        new = ir.Node(c.domain, c.op_type, inputs, attributes=list(attrs.values()), version=c.version, name=c.name)
        new.metadata_props.update(c.metadata_props)
        old = c.outputs[0]
        inner = new.outputs[0]
        layout = "nhwc" if perm == to_channels_first(len(perm)) else "nchw" if perm == to_channels_last(len(perm)) else "moved"
        inner.name = unique_name(f"{old.name or base}_{layout}", self.names)
        inner.type = old.type
        inner.shape = _permuted_shape(old.shape, _inverse(perm))
        inner.meta.update(old.meta)
        after = self.transpose(inner, perm, f"{base}_transpose")
        meta = dict(old.meta)
        ir.convenience.replace_nodes_and_values(graph, c, [c], [new, after], [old], [after.outputs[0]])
        after.outputs[0].meta.update(meta)

    def _plan(self, c: ir.Node, perm: tuple[int, ...]) -> tuple[list, dict] | None:
        """New inputs and attributes of ``c`` moved before the Transpose, or None when not legal."""
        domain, op = canonical_domain(c.domain), c.op_type
        rank = len(perm)
        inv = _inverse(perm)
        attrs = {k: a for k, a in c.attributes.items()}
        if (domain == QONNX and op in _QONNX_BROADCAST) or (domain == STANDARD and (op in _UNARY or op in _BROADCAST)):
            inputs = self._broadcast_inputs(c, perm, inv)
            return None if inputs is None else (inputs, attrs)
        if domain != STANDARD:
            return None
        if op in ("Concat", "Softmax", "LogSoftmax", "Hardmax"):
            if op != "Concat" and self.opset < 13:
                return None
            axis = c.attributes.get_int("axis", -1 if op != "Concat" else 0)
            axis = axis + rank if axis < 0 else axis
            if not 0 <= axis < rank:
                return None
            inputs = self._broadcast_inputs(c, perm, inv, exact_rank=True)
            if inputs is None:
                return None
            attrs["axis"] = ir.AttrInt64("axis", perm[axis])
            return inputs, attrs
        if op in ("QuantizeLinear", "DequantizeLinear"):
            if c.attributes.get_int("block_size", 0):
                return None
            data = self._data_input(c.inputs[0], perm)
            if data is None:
                return None
            scale = c.inputs[1] if len(c.inputs) > 1 else None
            if scale is not None and (scale.shape is None or len(scale.shape) > 1):
                return None
            if scale is not None and len(scale.shape) == 1 and (scale.shape[0] != 1 or "axis" in attrs):
                axis = c.attributes.get_int("axis", 1)
                axis = axis + rank if axis < 0 else axis
                attrs["axis"] = ir.AttrInt64("axis", perm[axis])
            return [data, *c.inputs[1:]], attrs
        if op == "Resize":
            return self._resize(c, perm, inv, attrs)
        return None

    def _data_input(self, value: ir.Value | None, perm: tuple[int, ...]) -> ir.Value | None:
        """``x`` when ``value`` is ``Transpose(x, perm)``."""
        producer = value.producer() if value is not None else None
        if producer is not None and perm_of(producer) == perm:
            return producer.inputs[0]
        return None

    def _broadcast_inputs(self, c: ir.Node, perm, inv, exact_rank: bool = False) -> list | None:
        """Inputs of ``c`` in the pre-Transpose layout, or None when some input cannot follow.

        Run-time inputs must carry the same Transpose; constants are permuted (after
        aligning their rank for broadcasting; with ``exact_rank`` they must have the
        full rank, as Concat needs); all-ones-shaped run-time values broadcast alike
        in any layout.
        """
        rank = len(perm)
        out: list = []
        moved_any = False
        for value in c.inputs:
            if value is None:
                out.append(None)
                continue
            data = self._data_input(value, perm)
            if data is not None:
                out.append(data)
                moved_any = True
                continue
            array = constant_array(value)
            if array is None:
                if not exact_rank and value.shape is not None and len(value.shape) <= rank and all(
                    d == 1 for d in value.shape
                ):
                    out.append(value)
                    continue
                return None
            if not exact_rank and array.size == 1 and array.ndim <= rank:
                out.append(value)
                continue
            if array.ndim > rank or (exact_rank and array.ndim != rank):
                return None
            aligned = array.reshape((1,) * (rank - array.ndim) + array.shape)
            moved = np.ascontiguousarray(np.transpose(aligned, inv))
            name = unique_name(f"{value.name or 'const'}_nhwc", self.names)
            out.append(new_initializer(c.graph, moved, name, like=value))
            self.stale.append(value)
        return out if moved_any else None

    def _resize(self, c: ir.Node, perm, inv, attrs) -> tuple[list, dict] | None:
        if c.attributes.get_string("mode", "nearest") != "nearest" or "axes" in attrs:
            return None
        data = self._data_input(c.inputs[0], perm)
        if data is None:
            return None
        rank = len(perm)
        inputs = [data]
        for index, value in enumerate(c.inputs[1:], start=1):
            if value is None or (value.shape is not None and len(value.shape) == 1 and value.shape[0] == 0):
                inputs.append(value)
                continue
            array = constant_array(value)
            if array is None:
                return None
            if index == 1:  # roi: starts then ends
                if array.size != 2 * rank:
                    return None
                moved = np.concatenate([array[:rank][list(inv)], array[rank:][list(inv)]])
            else:
                if array.size != rank:
                    return None
                moved = array[list(inv)]
            inputs.append(new_initializer(c.graph, moved, unique_name(f"{value.name or 'resize'}_nhwc", self.names)))
            self.stale.append(value)
        return inputs, attrs

    def finish(self) -> None:
        """Cancel or merge Transposes left back to back, then drop the unused ones."""
        for node in list(self.inserted):
            if node.graph is None or (perm := perm_of(node)) is None:
                continue
            for user, _ in list(node.outputs[0].uses()):
                if user.graph is not None and perm_of(user) is not None:
                    self._combine(node, perm, user)
        for node in self.inserted:
            if node.graph is not None and not node.outputs[0].uses() and not node.outputs[0].is_graph_output():
                node.graph.remove(node, safe=True)
        from qonnx_tools.passes._rewrite import drop_if_unused

        for value in self.stale:
            drop_if_unused(value)


def layout_state(model: ir.Model) -> Layout:
    """A fresh ``Layout`` for one run on ``model`` (names in use, the model's ai.onnx opset)."""
    opset = opset_of(model, STANDARD, 13)
    node_names = {n.name for n in model.graph if n.name}
    return Layout(model, all_value_names(model), node_names, opset=opset)


def fingerprint(model: ir.Model) -> tuple:
    """Nodes, their domains and wiring (ids): equal before and after means nothing changed."""
    return tuple((id(n), n.domain, n.op_type, tuple(id(v) for v in n.inputs)) for n in model.graph)
