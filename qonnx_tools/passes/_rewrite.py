"""Small graph-editing helpers shared by the cleanup passes (not a pass module).

- ``bypass``: remove a node that computes one of its inputs unchanged, keeping
  graph output names intact (the rules of onnx_ir's IdentityEliminationPass,
  plus the case it gets wrong: a graph output fed through to another graph output).
- ``all_value_names`` / ``unique_name``: fresh names for new initializers.
- ``new_initializer`` / ``drop_if_unused``: add a constant, remove one nobody reads.
- ``new_int_quant``: a QONNX Quant with its parameters as new initializers.
- ``quantizer_of_constants`` / ``replace_constant_input``: rewrite a quantized constant weight.
- ``transpose_perm``: a Transpose's permutation (its default, the reversal, included).
- ``rewriter_condition``: the adapter between our checks (``Decline``) and onnxscript's
  rewriter (``MatchResult.fail``).

(One-node rewrites are applied by ``QonnxPass.rewrite_each``, which collects their declines.)
"""

from __future__ import annotations

from qonnx_tools._ir import ir
from qonnx_tools.decline import Decline


def can_bypass(keep: ir.Value | None, drop: ir.Value) -> bool:
    """Whether uses of ``drop`` can be redirected to ``keep`` without renaming a protected value.

    When ``drop`` is a graph output its name must survive, so ``keep`` takes that
    name; that is impossible when ``keep`` is itself a graph input, an initializer
    or another graph output (one value cannot carry two output names).
    """
    if keep is None:
        return False
    if keep is drop:
        return False
    if drop.is_graph_output():
        return not (keep.is_graph_input() or keep.is_initializer() or keep.is_graph_output())
    return True


def bypass(node: ir.Node, keep: ir.Value, drop: ir.Value) -> bool:
    """Redirect every use of ``drop`` (an output of ``node``) to ``keep`` and remove ``node``.

    ``node``'s other outputs must be unused and no graph outputs. Returns False
    (and changes nothing) when that is not so or ``can_bypass`` says no.
    """
    if not can_bypass(keep, drop):
        return False
    for out in node.outputs:
        if out is not drop and (out.uses() or out.is_graph_output()):
            return False
    graph = node.graph
    if graph is None:
        return False
    if keep.shape is None and drop.shape is not None:
        keep.shape = drop.shape
    if keep.type is None and drop.type is not None:
        keep.type = drop.type
    was_output = drop.is_graph_output()
    name = drop.name
    drop.replace_all_uses_with(keep, replace_graph_outputs=True)
    if was_output:
        drop.name = None
        keep.name = name
    graph.remove(node, safe=True)
    return True


def used_names(model: ir.Model) -> set[str]:
    """Every value and node name of the model: what a new initializer or node must not be called."""
    return all_value_names(model) | {n.name for graph in model.graphs() for n in graph if n.name}


def all_value_names(model: ir.Model) -> set[str]:
    """Every value name used anywhere in the model (graph inputs, initializers, node outputs, subgraphs)."""
    names: set[str] = set()
    for graph in model.graphs():
        names.update(v.name for v in graph.inputs if v.name)
        names.update(n for n in graph.initializers if n)
        for node in graph:
            names.update(v.name for v in node.outputs if v.name)
    return names


def unique_name(base: str, used: set[str]) -> str:
    """``base`` or ``base_<k>`` (smallest k >= 1) not in ``used``; records the result in ``used``."""
    name, k = base, 0
    while name in used:
        k += 1
        name = f"{base}_{k}"
    used.add(name)
    return name


def new_initializer(graph: ir.Graph, array, name: str, like: ir.Value | None = None) -> ir.Value:
    """Register ``array`` as an initializer called ``name`` (already unique); copy ``like``'s metadata
    (annotations) when the new tensor holds the same numbers in another layout."""
    import numpy as np

    array = np.array(array, order="C")
    value = ir.Value(
        name=name,
        shape=ir.Shape(array.shape),
        type=ir.TensorType(ir.DataType.from_numpy(array.dtype)),
        const_value=ir.Tensor(array, name=name),
    )
    if like is not None:
        value.meta.update(like.meta)
    graph.register_initializer(value)
    return value


def new_int_quant(graph: ir.Graph, source: ir.Value, scale, zero_point, bitwidth, *, signed: bool, narrow: bool,
                  base: str, used: set[str], name: str | None = None, rounding_mode: str = "ROUND") -> ir.Node:
    """A QONNX ``Quant`` of ``source`` (not yet in the graph) whose scale, zero point and bit width are new
    float32 initializers ``<base>_scale``, ``<base>_zero_point``, ``<base>_bitwidth`` (made unique in ``used``)."""
    import numpy as np

    from qonnx_tools.domains import QONNX

    params = [new_initializer(graph, np.asarray(array, np.float32), unique_name(f"{base}_{suffix}", used))
              for array, suffix in ((scale, "scale"), (zero_point, "zero_point"), (bitwidth, "bitwidth"))]
    return ir.Node(QONNX, "Quant", [source, *params], name=name, num_outputs=1,
                   attributes=[ir.AttrInt64("signed", int(signed)), ir.AttrInt64("narrow", int(narrow)),
                               ir.AttrString("rounding_mode", rounding_mode)])


def drop_if_unused(value: ir.Value) -> None:
    """Remove a constant nobody reads any more: its initializer, or the Constant node producing it."""
    if value.uses() or value.is_graph_output() or value.is_graph_input():
        return
    producer = value.producer()
    if producer is not None:
        if producer.op_type == "Constant" and producer.graph is not None:
            if not any(o.uses() or o.is_graph_output() for o in producer.outputs):
                producer.graph.remove(producer, safe=True)
    elif value.graph is not None and value.graph.initializers.get(value.name) is value:
        value.graph.initializers.pop(value.name)


def remove_with_unused_inputs(node: ir.Node) -> None:
    """Remove ``node`` from its graph, then every constant input nobody else reads (``drop_if_unused``)."""
    inputs = [v for v in node.inputs if v is not None]
    node.graph.remove(node, safe=True)
    for value in inputs:
        drop_if_unused(value)


def read_only_as_weights(value: ir.Value) -> bool:
    """Whether ``value`` has readers and every one reads it as MatMul/Conv weights (input 1)."""
    from qonnx_tools.domains import CHANNELS_LAST, STANDARD, canonical_domain

    uses = value.uses()
    return bool(uses) and all(
        i == 1 and ((u.op_type == "MatMul" and canonical_domain(u.domain) == STANDARD)
                    or (u.op_type == "Conv" and canonical_domain(u.domain) in (STANDARD, CHANNELS_LAST)))
        for u, i in uses)


#: QONNX quantizers that act element by element (every parameter broadcasts against the data).
ELEMENTWISE_QUANTIZERS = ("IntQuant", "Quant", "BipolarQuant")


def quantizer_of_constants(value: ir.Value | None) -> ir.Node | Decline:
    """The IntQuant/BipolarQuant that computes ``value`` from initializers alone (not graph inputs),
    when nothing else reads ``value``; else why not. Such a quantized weight can be rewritten by
    rewriting its constant inputs."""
    from qonnx_tools.domains import QONNX, canonical_domain

    quant = value.producer() if value is not None else None
    if quant is None or quant.op_type not in ELEMENTWISE_QUANTIZERS or canonical_domain(quant.domain) != QONNX:
        return Decline("input is not produced by an IntQuant/BipolarQuant", value)
    if len(value.uses()) != 1 or value.is_graph_output():
        return Decline("the quantized weight has other readers", value)
    if any(v is None or not v.is_initializer() or v.const_value is None or v.is_graph_input() for v in quant.inputs):
        return Decline("quantizer inputs are not all initializers", quant)
    return quant


def transpose_perm(node: ir.Node, rank: int) -> list[int] | Decline:
    """The ``perm`` of Transpose ``node`` for an input of rank ``rank`` (absent: reversed axes),
    or why it is not a permutation of that rank."""
    perm = node.attributes.get_ints("perm")
    if perm is None:
        return list(range(rank))[::-1]
    perm = [int(p) for p in perm]
    if sorted(perm) != list(range(rank)):
        return Decline(f"perm {perm} is not a permutation of rank {rank}")
    return perm


def replace_constant_input(node: ir.Node, index: int, array, name: str, used: set[str]) -> ir.Value:
    """``node``'s input ``index`` becomes a new initializer holding ``array`` (named after ``name``,
    made unique in ``used``, annotations copied); the old constant goes if nothing else reads it."""
    old = node.inputs[index]
    fresh = new_initializer(node.graph, array, unique_name(name, used), like=old)
    node.replace_input_with(index, fresh)
    drop_if_unused(old)
    return fresh


def rewriter_condition(pass_, node: ir.Node, outcome: object):
    """The condition result onnxscript's pattern rewriter wants, from one of our checks: a ``Decline``
    is recorded on ``pass_`` (``QonnxPass.decline``) and becomes ``MatchResult().fail(reason, node)``;
    anything else means the rewrite applies (True)."""
    if not isinstance(outcome, Decline):
        return True
    from qonnx_tools._ir import rewriter

    pass_.decline(outcome, node)
    return rewriter.MatchResult().fail(outcome.reason, node)
