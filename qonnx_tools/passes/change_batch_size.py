"""change-batch-size: give the model's inputs and outputs a new first (batch) dimension.

Options: ``batch`` (int, default 1), or ``symbolic`` (a dimension name such as
``N``; when given it wins over ``batch``).

What it does, in order:

1. **Old batch.** The first dimension of the first graph input that is not an
   initializer (and has rank >= 1) is the old batch size -- a number, a name, or
   unknown. Initializers listed as graph inputs (Brevitas weights) are never
   touched.
2. **Reshape shapes that hard-code the old batch.** When the old batch is a
   number ``B``, every Reshape whose target shape is a constant starting with
   ``B`` gets ``-1`` there when no other entry is ``-1`` (the batch is then
   inferred from the element count: right as long as the other target dims do
   not depend on the batch), else ``0`` (copy dim 0 of the data input) when the
   data input's dim 0 is known to be the old batch and ``allowzero`` is not 1.
   (When such a data shape is unknown, ``infer-shapes`` runs first, at the old
   batch size.) Reshapes that fit neither rule are listed in ``declined`` and
   left alone.
   A shape constant used elsewhere too is copied, not changed in place.
3. **Graph I/O.** Every graph input (not an initializer) and output whose first
   dimension equals the old batch (same number, same name, or unknown) gets the
   new one. Other I/O (e.g. an output without a batch axis) keeps its shape.
4. **Intermediate shapes are cleared.** Every node output (subgraphs included)
   that is not a graph output loses its shape (element types stay): any of them
   may depend on the batch, and telling which needs shape inference. Re-run
   ``infer-shapes`` afterwards (``qonnx cleanup --fix-batch N`` does).

Limits: dim 0 is assumed to be the batch axis -- a model whose first axis is
something else (e.g. sequence-first attention, ``(L, N, E)``) gets a wrong
result. Only Reshape constants are fixed. Other ops that can hard-code a batch
size in a constant (``Expand``/``Tile``/``ConstantOfShape`` shapes, ``Slice``
ends, ``Split`` sizes, ``Resize`` sizes) are not inspected; a model that relies
on them will fail shape inference or execution at the new batch size.

Nothing changes (``modified`` False) when the I/O already has the requested
batch dimension.

Implementation: plain use-def code (it edits shapes and one kind of constant, no
node patterns).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from qonnx_tools._ir import ir
from qonnx_tools.constants import constant_array
from qonnx_tools.decline import Decline
from qonnx_tools.domains import STANDARD, canonical_domain
from qonnx_tools.errors import BadInputError
from qonnx_tools.passes._rewrite import all_value_names, drop_if_unused, unique_name
from qonnx_tools.passes.base import PassResult, QonnxPass

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:-]*$")


def _key(dim) -> tuple:
    """Comparable form of a dimension: ("int", n) or ("sym", name-or-None)."""
    if isinstance(dim, int):
        return ("int", dim)
    return ("sym", getattr(dim, "value", dim))


def _io_values(graph: ir.Graph) -> list[ir.Value]:
    inputs = [v for v in graph.inputs if not v.is_initializer()]
    return inputs + [v for v in graph.outputs if v not in inputs]


@dataclass
class ChangeBatchSize(QonnxPass, name="change-batch-size"):
    """set dim 0 of graph inputs/outputs to batch (or a symbolic name); fix Reshape constants hard-coding the
    old batch; clears intermediate shapes (re-run infer-shapes)"""

    batch: int = 1
    symbolic: str | None = None

    def call(self, model: ir.Model) -> PassResult:
        target = self._target()
        graph = model.graph
        first = next((v for v in graph.inputs if not v.is_initializer() and v.shape is not None and len(v.shape)), None)
        if first is None:
            return PassResult(model, False)
        old = first.shape[0]
        to_change = [
            v for v in _io_values(graph) if v.shape is not None and len(v.shape) and _key(v.shape[0]) == _key(old)
        ]
        to_change = [v for v in to_change if _key(v.shape[0]) != _key(target)]
        if not to_change:
            return PassResult(model, False)
        if isinstance(old, int) and old != target:
            self._fix_reshapes(model, old, target)
        for value in to_change:
            value.shape = ir.Shape([target, *list(value.shape)[1:]])
        outputs = {id(v) for v in graph.outputs}
        for node in ir.traversal.RecursiveGraphIterator(graph):
            for value in node.outputs:
                if id(value) not in outputs:
                    value.shape = None
        return PassResult(model, True)

    def _target(self) -> int | str:
        if self.symbolic is not None:
            if not _NAME.match(self.symbolic):
                raise BadInputError(f"change-batch-size: symbolic={self.symbolic!r} is not a dimension name")
            return self.symbolic
        if not isinstance(self.batch, int) or self.batch < 1:
            raise BadInputError(f"change-batch-size: batch={self.batch!r} must be a positive integer")
        return self.batch

    def _fix_reshapes(self, model: ir.Model, old: int, target: int | str) -> None:
        candidates = []
        for node in ir.traversal.RecursiveGraphIterator(model.graph):
            if node.op_type != "Reshape" or canonical_domain(node.domain) != STANDARD or len(node.inputs) < 2:
                continue
            shape = constant_array(node.inputs[1], overridable=False)
            if shape is not None and shape.ndim == 1 and shape.size and int(shape[0]) == old:
                candidates.append((node, shape))
        if any(np.any(shape[1:] == -1) and _unknown_dim0(node.inputs[0]) for node, shape in candidates):
            _infer_old_shapes(model)  # "[B, -1]" needs to know that the data's dim 0 is the batch
        names = all_value_names(model)
        cache: dict[tuple, ir.Value] = {}
        sources: list[ir.Value] = []
        for node, shape in candidates:
            data, shape_value = node.inputs[0], node.inputs[1]
            new_first = self._replacement(node, data, shape, old)
            if isinstance(new_first, Decline):
                why = f"shape {shape.tolist()} starts with the old batch {old}: {new_first.reason}"
                self.decline(Decline(why, *new_first.where), node)
                continue
            fixed = shape.copy()
            fixed[0] = new_first
            graph = node.graph
            key = (id(shape_value), tuple(fixed.tolist()), id(graph))
            if key not in cache:
                name = unique_name(f"{shape_value.name or node.name or 'shape'}_batch", names)
                tensor = ir.Tensor(fixed, name=name)
                cache[key] = ir.Value(
                    name=name, shape=ir.Shape(fixed.shape), type=ir.TensorType(tensor.dtype), const_value=tensor
                )
                graph.register_initializer(cache[key])
                sources.append(shape_value)
            node.replace_input_with(1, cache[key])
        for value in sources:
            drop_if_unused(value)

    @staticmethod
    def _replacement(node: ir.Node, data: ir.Value | None, shape: np.ndarray, old: int) -> int | Decline:
        if not np.any(shape[1:] == -1):
            return -1
        if node.attributes.get_int("allowzero", 0) == 1:
            return Decline("another entry is -1 and allowzero=1 (0 would mean a zero-size dim)")
        if data is not None and data.shape is not None and len(data.shape) and _key(data.shape[0]) == ("int", old):
            return 0
        return Decline("another entry is -1 and the data input's dim 0 is not known to be the batch", data)


def _unknown_dim0(value: ir.Value | None) -> bool:
    return value is not None and (value.shape is None or not len(value.shape) or not isinstance(value.shape[0], int))


def _infer_old_shapes(model: ir.Model) -> None:
    """Run infer-shapes at the old batch size (its results are cleared again afterwards)."""
    import warnings

    from qonnx_tools.passes.infer_shapes import InferShapes

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        InferShapes()(model)


