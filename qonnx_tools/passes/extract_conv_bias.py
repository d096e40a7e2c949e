"""extract-conv-bias: ``Conv(x, W, B)`` / ``ConvTranspose(x, W, B)`` -> bias-free conv + ``Add``.

The bias becomes an explicit ``Add`` of ``B`` reshaped to ``(1, C, 1, ..., 1)``
(rank of the convolution's input), so it can be quantized, absorbed or moved on
its own. The conv keeps its name, attributes and weights; its output value keeps
its name, type, shape and annotations on the Add (graph outputs stay named).

- constant ``B`` (an initializer that is not a graph input, or a ``Constant``
  output): a reshaped initializer (shared when one bias feeds several convs);
  the old one is removed when nothing else uses it;
- any other ``B`` (e.g. the output of a ``DequantizeLinear`` in QCDQ models, or
  an initializer listed as a graph input): a ``Reshape`` to ``[1, -1, 1, ...]``.

Models below ai.onnx opset 7 are left alone (Add broadcasting needed the legacy
``broadcast`` attribute then; run ``opset-upgrade`` first).

The rank comes from W (its shape or its constant value), else from x or the
output; when none is known the conv is left alone (run ``infer-shapes``).

Numerics: the conv's accumulation plus the bias is now accumulation, then a
separate Add -- the same operations; runtimes that add the bias inside the
accumulation loop may differ in the last bit.

Implementation: plain use-def code (a two-node replacement whose bias operand
is built three different ways; ``ir.convenience.replace_nodes_and_values``
rewires), one linear sweep over the nodes, subgraphs included.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from qonnx_tools._ir import ir
from qonnx_tools.constants import constant_array
from qonnx_tools.decline import Decline
from qonnx_tools.domains import STANDARD, canonical_domain, opset_of
from qonnx_tools.passes._rewrite import all_value_names, drop_if_unused, new_initializer, unique_name
from qonnx_tools.passes.base import PassResult, QonnxPass

_CONV_OPS = ("Conv", "ConvTranspose")


@dataclass
class _State:
    names: set[str]
    opset: int
    cache: dict[tuple, ir.Value] = field(default_factory=dict)
    sources: list[ir.Value] = field(default_factory=list)

    def initializer(self, graph: ir.Graph, array: np.ndarray, base: str, like: ir.Value | None = None) -> ir.Value:
        return new_initializer(graph, array, unique_name(base, self.names), like)


def _rank(node: ir.Node) -> int | None:
    w = node.inputs[1]
    if w is not None:
        if w.shape is not None:
            return len(w.shape)
        array = constant_array(w)
        if array is not None:
            return array.ndim
    for value in (node.inputs[0], node.outputs[0]):
        if value is not None and value.shape is not None:
            return len(value.shape)
    return None




def extract_bias(node: ir.Node, state: _State) -> Decline | None:
    """Split the bias off one conv; None on success, else why it was left alone."""
    graph = node.graph
    if graph is None or len(node.inputs) < 3 or node.inputs[2] is None:
        return Decline("no bias")
    x, w, bias = node.inputs[0], node.inputs[1], node.inputs[2]
    rank = _rank(node)
    if rank is None:
        return Decline("rank unknown (run infer-shapes first)")
    if rank < 3:
        return Decline(f"rank {rank} < 3")
    if state.opset < 7:
        return Decline("ai.onnx opset < 7 (Add would need the legacy broadcast attribute); run opset-upgrade first")
    base = node.name or node.outputs[0].name or node.op_type.lower()
    new_nodes: list[ir.Node] = []
    array = constant_array(bias, overridable=False)
    if array is not None:
        if array.ndim != 1:
            return Decline(f"bias of shape {array.shape} is not 1-D", bias)
        key = ("const", id(bias), rank, id(graph))
        if key not in state.cache:
            shaped = array.reshape((1, -1) + (1,) * (rank - 2))
            state.cache[key] = state.initializer(graph, shaped, f"{bias.name or base}_bcast", like=bias)
            state.sources.append(bias)
        bias_in = state.cache[key]
    else:
        key = ("shape", id(graph), rank)
        if key not in state.cache:
            state.cache[key] = state.initializer(
                graph, np.array([1, -1] + [1] * (rank - 2), dtype=np.int64), f"bias_shape_rank{rank}"
            )
        reshape = ir.node("Reshape", [bias, state.cache[key]], name=unique_name(f"{base}_bias_reshape", state.names))
        out = reshape.outputs[0]
        out.name = unique_name(f"{bias.name or base}_bcast", state.names)
        out.type = bias.type
        if bias.shape is not None and len(bias.shape) == 1:
            out.shape = ir.Shape([1, bias.shape[0]] + [1] * (rank - 2))
        new_nodes.append(reshape)
        bias_in = out

    old = node.outputs[0]
    conv = ir.Node(
        node.domain,
        node.op_type,
        [x, w],
        attributes=list(node.attributes.values()),
        name=node.name,
        version=node.version,
        doc_string=node.doc_string,
        metadata_props=dict(node.metadata_props),
    )
    conv_out = conv.outputs[0]
    conv_out.name = unique_name(f"{old.name or base}_nobias", state.names)
    conv_out.type = old.type
    conv_out.shape = old.shape
    add = ir.node("Add", [conv_out, bias_in], name=unique_name(f"{base}_bias", state.names))
    y = add.outputs[0]
    y.meta.update(old.meta)
    y.metadata_props.update(old.metadata_props)
    new_nodes += [conv, add]
    ir.convenience.replace_nodes_and_values(graph, node, [node], new_nodes, [old], [y])
    return None


@dataclass
class ExtractConvBias(QonnxPass, name="extract-conv-bias"):
    """Conv/ConvTranspose with a bias -> bias-free conv + Add of the bias reshaped to (1, C, 1, ...)"""

    def call(self, model: ir.Model) -> PassResult:
        convs = [
            node
            for node in ir.traversal.RecursiveGraphIterator(model.graph)
            if node.op_type in _CONV_OPS
            and canonical_domain(node.domain) == STANDARD
            and len(node.inputs) >= 3
            and node.inputs[2] is not None
        ]
        if not convs:
            return PassResult(model, False)
        state = _State(all_value_names(model), opset_of(model, STANDARD, 1))
        modified = self.rewrite_each(convs, lambda node: extract_bias(node, state))
        for value in state.sources:
            drop_if_unused(value)
        return PassResult(model, modified)
