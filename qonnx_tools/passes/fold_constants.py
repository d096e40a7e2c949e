"""fold-constants: compute every node whose inputs are all constant, once, with the executor's kernels.

One run walks the main graph in topological order. A node is folded when every
input it has is constant -- an initializer that is *not* a graph input (a graph
input may be overridden by the caller), the output of a ``Constant`` node, or an
output folded earlier in the same run -- so a whole constant subgraph folds in
one run. The node runs with the kernel the executor would use
(``engine.bind_kernel``), so folding never changes what the executor computes.
Each output that is still needed becomes an initializer under the output's own
name (with its annotations), the node is removed, and inputs left unused by
the fold (initializers, ``Constant`` nodes) are removed too.

``Shape`` and ``Size`` fold too when their input's shape is fully static (every
dimension a number), whatever that input is: the static shape is part of the
model's contract (a graph input's declared shape), as onnxsim and qonnx's
cleanup treat it. So ``Shape -> Gather -> Unsqueeze -> Concat -> Reshape``
flattening chains of exporters fold to one constant target shape. Turn this off
with ``static_shapes=false`` for a model whose input shapes are to change later.

Never folded:

- quantizers -- QONNX ``IntQuant``/``Quant``, ``BipolarQuant``, ``FloatQuant``,
  ``Trunc``, ``MultiThreshold`` and standard ``QuantizeLinear``/``DequantizeLinear``/
  ``DynamicQuantizeLinear`` -- unless ``fold_quantizers`` (then quantized weights
  become plain float initializers, and QCDQ weights dequantized floats);
- nodes with subgraphs, nondeterministic ops (``Random*``, ``Bernoulli``,
  ``Multinomial``, ``Dropout``), ``Constant`` nodes themselves, nodes without inputs;
- nodes whose kernel is missing or fails, or returns something else than the
  declared element type/shape of the output (left for the executor to report);
- outputs larger than ``max_bytes`` (the node is left as it is).

Graph outputs are folded too: the output keeps its name and becomes an
initializer that is also a graph output (valid ONNX; onnxruntime runs it).
Subgraphs and functions are not searched.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from qonnx_tools._ir import ir, subgraphs
from qonnx_tools.constants import constant_array
from qonnx_tools.domains import QONNX, STANDARD, canonical_domain, canonical_op
from qonnx_tools.executor.engine import bind_kernel
from qonnx_tools.graph_order import topological_order
from qonnx_tools.passes._rewrite import all_value_names, unique_name
from qonnx_tools.passes.base import PassResult, QonnxPass

logger = logging.getLogger(__name__)

#: (canonical domain, canonical op) of the quantizers that are kept unless ``fold_quantizers``.
QUANTIZER_OPS: frozenset[tuple[str, str]] = frozenset(
    {
        (QONNX, "IntQuant"),
        (QONNX, "BipolarQuant"),
        (QONNX, "FloatQuant"),
        (QONNX, "Trunc"),
        (QONNX, "MultiThreshold"),
        (STANDARD, "QuantizeLinear"),
        (STANDARD, "DequantizeLinear"),
        (STANDARD, "DynamicQuantizeLinear"),
    }
)

#: Standard ops whose result is not a function of their inputs.
NONDETERMINISTIC_OPS: frozenset[str] = frozenset(
    {"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial", "Bernoulli", "Dropout"}
)


def is_quantizer(node: ir.Node) -> bool:
    """True for the quantizer nodes fold-constants keeps by default (any domain spelling)."""
    return canonical_op(node.domain, node.op_type) in QUANTIZER_OPS


def _has_subgraph(node: ir.Node) -> bool:
    return any(True for _ in subgraphs(node))


def _is_constant_node(node: ir.Node | None) -> bool:
    return node is not None and node.op_type == "Constant" and canonical_domain(node.domain) == STANDARD


@dataclass
class FoldConstants(QonnxPass, name="fold-constants"):
    """compute nodes whose inputs are all constant (one topological sweep) into initializers; quantizers only
    with fold_quantizers"""

    fold_quantizers: bool = False
    max_bytes: int = 64 * 1024 * 1024
    static_shapes: bool = True

    def call(self, model: ir.Model) -> PassResult:
        graph = model.graph
        folded: dict[ir.Value, np.ndarray] = {}
        used_names: set[str] | None = None
        modified = False
        for node in topological_order(graph):
            static = self._static_shape(node) if self.static_shapes else None
            if static is not None:
                results = self._keep(node, [static])
            elif not self._candidate(node, folded):
                continue
            else:
                arrays = self._input_arrays(node, folded)
                if arrays is None:
                    continue
                results = self._run(node, model, arrays)
            if results is None:
                continue
            if any(not out.name for out, _ in results) and used_names is None:
                used_names = all_value_names(model)
            for out, array in results:
                name = out.name or unique_name(f"{node.name or node.op_type}_folded", used_names)
                folded[self._replace_with_initializer(graph, out, array, name)] = array
            inputs = [v for v in node.inputs if v is not None]
            graph.remove(node, safe=True)
            _drop_if_unused(graph, inputs)
            modified = True
        return PassResult(model, modified)

    # -- deciding ---------------------------------------------------------------
    def _candidate(self, node: ir.Node, folded: dict[ir.Value, np.ndarray]) -> bool:
        if _is_constant_node(node) or not node.outputs:
            return False
        if canonical_domain(node.domain) == STANDARD and node.op_type in NONDETERMINISTIC_OPS:
            return False
        if not self.fold_quantizers and is_quantizer(node):
            return False
        if _has_subgraph(node):
            return False
        present = [v for v in node.inputs if v is not None]
        if not present:
            return False
        return all(v in folded or _is_static(v) for v in present)

    def _input_arrays(self, node: ir.Node, folded: dict[ir.Value, np.ndarray]) -> list[np.ndarray | None] | None:
        arrays: list[np.ndarray | None] = []
        for value in node.inputs:
            if value is None:
                arrays.append(None)
                continue
            array = folded.get(value)
            if array is None:
                try:
                    array = constant_array(value, overridable=False)
                except Exception as exc:  # an undecodable Constant: leave the node alone
                    logger.debug("fold-constants: cannot read constant %r: %s", value.name, exc)
                    return None
            if array is None:
                return None
            arrays.append(array)
        return arrays

    @staticmethod
    def _static_shape(node: ir.Node) -> np.ndarray | None:
        """The output of a ``Shape``/``Size`` node whose input has a fully static shape."""
        if canonical_domain(node.domain) != STANDARD or node.op_type not in ("Shape", "Size"):
            return None
        source = node.inputs[0] if node.inputs else None
        if source is None or source.shape is None or not all(isinstance(d, int) for d in source.shape):
            return None
        dims = list(source.shape)
        if node.op_type == "Size":
            return np.array(int(np.prod(dims, dtype=np.int64)), dtype=np.int64)
        start, end = node.attributes.get_int("start", 0), node.attributes.get_int("end", len(dims))
        return np.array(dims[slice(start, end)], dtype=np.int64)  # Python slicing clamps like Shape-15

    # -- computing --------------------------------------------------------------
    def _run(
        self, node: ir.Node, model: ir.Model, arrays: list[np.ndarray | None]
    ) -> list[tuple[ir.Value, np.ndarray]] | None:
        """(output value, array) for every output that must be kept; None when the node stays."""
        try:
            kernel, ctx = bind_kernel(node, model)
            result = kernel(ctx, *arrays)
        except Exception as exc:  # no kernel, bad attributes, kernel error: the executor will say
            logger.debug("fold-constants: not folding %r (%s): %s", node.name, node.op_type, exc)
            return None
        if isinstance(result, np.ndarray) or np.isscalar(result):
            result = (result,)
        return self._keep(node, list(result))

    def _keep(self, node: ir.Node, results: list) -> list[tuple[ir.Value, np.ndarray]] | None:
        """(output value, array) for every computed output that is still needed; None to keep the node."""
        kept: list[tuple[ir.Value, np.ndarray]] = []
        for index, out in enumerate(node.outputs):
            if not (out.uses() or out.is_graph_output()):
                continue  # dropped with the node
            if out.name and out.name in node.graph.initializers:
                return None  # an initializer already has this name (invalid model): leave it
            if index >= len(results) or not isinstance(results[index], (np.ndarray, np.generic)):
                return None
            array = np.asarray(results[index])
            if not self._acceptable(node, out, array):
                return None
            kept.append((out, array))
        return kept

    def _acceptable(self, node: ir.Node, out: ir.Value, array: np.ndarray) -> bool:
        if array.dtype.kind in "OUSV":
            return False
        if array.nbytes > self.max_bytes:
            logger.debug("fold-constants: %r output %r is %d bytes > max_bytes", node.name, out.name, array.nbytes)
            return False
        try:
            dtype = ir.DataType.from_numpy(array.dtype)
        except Exception:
            return False
        if out.dtype is not None and out.dtype != dtype:
            logger.debug("fold-constants: %r output %r is %s, declared %s", node.name, out.name, dtype, out.dtype)
            return False
        if out.shape is not None:
            dims = list(out.shape)
            if len(dims) != array.ndim or any(isinstance(d, int) and d != s for d, s in zip(dims, array.shape)):
                logger.debug("fold-constants: %r output %r: %s, declared %s", node.name, out.name, array.shape, out.shape)
                return False
        return True

    # -- rewriting --------------------------------------------------------------
    @staticmethod
    def _replace_with_initializer(graph: ir.Graph, out: ir.Value, array: np.ndarray, name: str) -> ir.Value:
        array = np.ascontiguousarray(array)
        tensor = ir.Tensor(array, name=name)
        new = ir.Value(
            name=None,
            shape=ir.Shape(array.shape),
            type=ir.TensorType(tensor.dtype),
            const_value=tensor,
            doc_string=out.doc_string,
            metadata_props=dict(out.metadata_props),
        )
        new.meta.update(out.meta)
        out.name = None
        new.name = name
        graph.register_initializer(new)
        out.replace_all_uses_with(new, replace_graph_outputs=True)
        return new


def _is_static(value: ir.Value) -> bool:
    """Constant and not overridable: a non-input initializer or a Constant node's output."""
    if value.const_value is not None and value.is_initializer():
        return not value.is_graph_input()
    return _is_constant_node(value.producer())


def _drop_if_unused(graph: ir.Graph, values: list[ir.Value]) -> None:
    """Remove initializers and Constant nodes that only fed a folded node."""
    for value in values:
        if value.uses() or value.is_graph_output() or value.is_graph_input():
            continue
        if value.is_initializer() and value.name in graph.initializers and graph.initializers[value.name] is value:
            del graph.initializers[value.name]
            continue
        producer = value.producer()
        if _is_constant_node(producer) and producer.graph is graph:
            graph.remove(producer, safe=True)
