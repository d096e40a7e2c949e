"""QONNX -> QCDQ: replace every QONNX quantizer by standard ONNX ops that onnxruntime runs exactly.

``to_qcdq(model)`` converts in place and returns a ConversionResult. Each quantizer
node is lowered by the rule its op module owns (``lower_qcdq``; see
qonnx_tools.lowering). What comes out, per case:

===========================================  ===================================================  ======
QONNX node / case                            emitted                                              opset
===========================================  ===================================================  ======
IntQuant ROUND, constant params, bits <= 8,  QuantizeLinear(int8|uint8) -> [Clip lo..hi] ->       10/12
zero-point 0, per-tensor                     DequantizeLinear (Clip only when the range is
                                             narrower than the container)
... per-axis / blocked parameters            same with ``axis`` / ``axis`` + ``block_size``       13/21
... 4-bit full range at opset >= 21          QuantizeLinear(int4|uint4) -> DequantizeLinear       21
... 9..16 bits                               QuantizeLinear(int16|uint16) -> DequantizeLinear     21
                                             [-> Clip/Max/Min in float for narrower ranges]
... integer zero-point != 0                  Div -> Add(zp) -> QuantizeLinear(scale 1, zp 0) ->   as above
                                             [Clip] -> DequantizeLinear(scale, zp)
constant X (weights, biases), any rounding   integer initializer (pre-quantized, pre-clipped;     10/13
                                             int8/uint8, int4/uint4 and int16/uint16 at >= 21,
                                             int32 for wider, e.g. 32-bit biases) ->
                                             DequantizeLinear; ``keep_float_weights=True``:
                                             Q -> [Clip] -> DQ on the float initializer
other IntQuant (CEIL, FLOOR, UP, DOWN,       Div -> [Add] -> rounding -> Clip|Max/Min -> [Sub] ->  11..13
HALF_*, non-integer zp, > 16 bits,           Mul (IntQuant.execute's order, float32)
run-time params, opset too low)
BipolarQuant                                 Where(GreaterOrEqual(x, 0), s, -s); constant X:      12
                                             int8 (int4 at >= 21) +-1 initializer -> DQ
Trunc v1 / v2                                Div -> [Add] -> Round -> Mul(2^-k) -> [Clip] ->      13
                                             rounding (FLOOR...) -> [Sub] -> Mul (v2 with zp 0,
                                             <= 8 bits: -> QuantizeLinear -> DequantizeLinear)
FloatQuant = OCP E4M3FN / E5M2, ROUND,       QuantizeLinear(float8, saturate=1) ->               19
saturating                                   DequantizeLinear; constant X: float8 initializer ->
                                             DequantizeLinear (also for smaller formats whose
                                             values are float8 values)
other FloatQuant (other formats, CEIL/FLOOR, exact emulation (exponent from comparisons with a   13
non-saturating, run-time scale)              power-of-two table, no Log)
MultiThreshold                               ReduceSum(GreaterOrEqual(x, thresholds)) * s + b    13
===========================================  ===================================================  ======

Opset: with ``opset=None`` the result uses the lowest ai.onnx opset that expresses
every node in its preferred (Q/DQ) form, at least the model's; with ``opset=N``
rules use what opset N offers (emulation otherwise). When the opset changes, the
model's other ops are converted first with the ``opset-upgrade`` pass (onnx's
version converter; it has few down adapters, so an opset below the model's usually
fails with BadInputError and the model is left unchanged).

Nothing is left behind silently: every node not converted is listed in
``result.unconverted`` with the rule's reason; with ``allow_partial=False`` (the
default) ConversionError is raised *before* the model is changed (the shape
annotations added for planning are removed again; the same on any other error).
When no QONNX node remains, the QONNX opset imports are removed. Initializers
(and their graph-input entries, which Brevitas adds) that only fed replaced nodes
are removed.

Standard ops already in the model are never touched: e.g. DynamicQuantizeLinear
(Brevitas' dynamic activation quantization; the corpus has no QONNX form of it)
passes through unchanged.

Numerics: onnxruntime (CPU, optimisations disabled) on the result equals our
executor on the original value for value, including rounding ties (``-0.0`` may
become ``+0.0``). Two places where the obvious QCDQ is not exact and is not used:
QuantizeLinear(x, s, zp) with zp != 0 rounds before adding zp (IntQuant adds
first), and onnxruntime's non-saturating float8 QuantizeLinear deviates from ONNX
(+inf -> 448 in E4M3FN; values rounding to 65536 -> NaN in E5M2). Known limits:
NaN inputs of a Q/DQ-lowered IntQuant come out as numbers (integer containers
have no NaN); run-time (non-constant) bit widths above 24 bits.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Callable

import onnx
import onnx.helper

from qonnx_tools import ops as qonnx_ops
from qonnx_tools._ir import ir
from qonnx_tools.convert import OPSET_FLAG
from qonnx_tools.convert.result import ConversionResult, Unconverted
from qonnx_tools.decline import Decline
from qonnx_tools.domains import QONNX, STANDARD, canonical_domain, is_qonnx_domain, opset_of
from qonnx_tools.errors import BadInputError, QonnxToolsError
from qonnx_tools.lowering import HIGHEST_FORM_OPSET, LoweringContext, LoweringOutcome, Rewrite
from qonnx_tools.passes._rewrite import all_value_names

TARGET = "qcdq"

Rule = Callable[[ir.Node, LoweringContext], LoweringOutcome]


def to_qcdq(
    model: ir.Model,
    *,
    opset: int | None = None,
    keep_float_weights: bool = False,
    allow_partial: bool = False,
) -> ConversionResult:
    """Lower every QONNX node of ``model`` (in place) to standard ONNX; see the module docstring."""
    annotations = _annotations(model)
    _infer_shapes(model)
    try:
        return _convert(model, annotations, opset, keep_float_weights, allow_partial)
    except BaseException:
        _restore_annotations(model, annotations)
        raise


def _convert(model, annotations, opset, keep_float_weights, allow_partial) -> ConversionResult:
    model_opset = standard_opset(model)
    qonnx_opset = _qonnx_opset(model)
    if opset is not None and (not isinstance(opset, int) or opset < 1):
        raise BadInputError(f"to_qcdq: opset must be a positive integer, got {opset!r}")
    nodes = _quantizer_nodes(model)

    if opset is None:
        probe = _plan(model, nodes, max(model_opset, HIGHEST_FORM_OPSET), qonnx_opset, keep_float_weights,
                      economical=True, used=_used_names(model))
        target = max([model_opset] + [out.min_opset for _, out in probe if isinstance(out, Rewrite)])
        _discard(probe)
    else:
        target = opset

    plan = _plan(model, nodes, target, qonnx_opset, keep_float_weights, economical=False,
                 used=_used_names(model))
    unconverted = [
        Unconverted(node.name or "?", node.op_type, out.reason, out.detail(node))
        for node, out in plan if isinstance(out, Decline)
    ]
    result = ConversionResult(model, TARGET, unconverted)
    if unconverted and not allow_partial:
        _discard(plan)
        result.raise_if_partial()

    if target != model_opset:
        _discard(plan)
        _set_opset(model, target)
        nodes = _quantizer_nodes(model)
        plan = _plan(model, nodes, target, qonnx_opset, keep_float_weights, economical=False,
                     used=_used_names(model))
        result.unconverted[:] = [
            Unconverted(node.name or "?", node.op_type, out.reason, out.detail(node))
            for node, out in plan if isinstance(out, Decline)
        ]
    _apply(plan)
    _restore_annotations(model, annotations)
    _drop_unused_qonnx_imports(model)
    _raise_ir_version(model)

    kinds = Counter(out.kind for _, out in plan if isinstance(out, Rewrite))
    summary = ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items())) or "no quantizer nodes"
    result.notes.append(f"ai.onnx opset {target} (model had {model_opset}); {summary}")
    for node, out in plan:
        if isinstance(out, Rewrite):
            done = Unconverted(node.name or "?", node.op_type, out.pattern)
            result.converted.append(done)
            result.notes.append(str(done))
    return result


# -- planning -------------------------------------------------------------------------------


def standard_opset(model: ir.Model) -> int:
    """The model's ai.onnx opset (0 when it imports none)."""
    return opset_of(model, STANDARD)


def _qonnx_opset(model: ir.Model) -> int:
    return opset_of(model, QONNX)


def _quantizer_nodes(model: ir.Model) -> list[ir.Node]:
    """Every node of a QONNX domain, in every graph (one pass over the nodes)."""
    found = []
    for graph in model.graphs():
        for node in graph:
            if is_qonnx_domain(node.domain):
                found.append(node)
    return found


def _rule_for(node: ir.Node, qonnx_opset: int) -> Rule | Decline:
    """The node's op's ``lower_qcdq`` (QonnxOp's declines for ops without a QCDQ form)."""
    op = qonnx_ops.get_op(node.domain, node.op_type, qonnx_opset or None)
    if op is None:
        return Decline(f"unknown QONNX op {node.domain}:{node.op_type}")
    return op.lower_qcdq


def _plan(
    model: ir.Model,
    nodes: list[ir.Node],
    opset: int,
    qonnx_opset: int,
    keep_float_weights: bool,
    *,
    economical: bool,
    used: set[str],
) -> list[tuple[ir.Node, LoweringOutcome]]:
    ctx = LoweringContext(model, opset, keep_float_weights, economical, used, qonnx_opset)
    plan = []
    for node in nodes:
        rule = _rule_for(node, qonnx_opset)
        if isinstance(rule, Decline):
            plan.append((node, rule))
            continue
        try:
            out = rule(node, ctx)
        except Decline as exc:
            out = exc
        except QonnxToolsError as exc:
            out = Decline(str(exc))
        if isinstance(out, Rewrite) and out.min_opset > opset:
            out = Decline(
                f"{out.pattern} needs opset {out.min_opset} > {opset} ({OPSET_FLAG} {out.min_opset} allows it)"
            )
        plan.append((node, out))
    return plan


# -- applying -------------------------------------------------------------------------------


def _discard(plan: list[tuple[ir.Node, LoweringOutcome]]) -> None:
    """Detach the nodes of a plan that will not be applied: building them registered them as
    users of the model's values, and stale uses would make ``uses()`` over-count."""
    for _, out in plan:
        if isinstance(out, Rewrite):
            for new in out.nodes:
                new.resize_inputs(0)


def _apply(plan: list[tuple[ir.Node, LoweringOutcome]]) -> None:
    """Insert each rewrite before its node, move the node's output name to the new output,
    remove the node and then every initializer / Constant that only fed replaced nodes."""
    orphans: list[ir.Value] = []
    shared: dict[tuple, ir.Value] = {}
    for node, out in plan:
        if not isinstance(out, Rewrite):
            continue
        graph = node.graph
        for init in out.initializers:
            tensor = init.const_value
            key = None
            if tensor is not None and tensor.size <= _SHARED_CONSTANT_ELEMENTS:
                key = (id(graph), tensor.dtype, tuple(tensor.shape), tensor.tobytes())
            if key is not None and key in shared:
                init.replace_all_uses_with(shared[key])
                continue
            graph.register_initializer(init)
            if key is not None:
                shared[key] = init
        new_nodes = list(out.nodes)
        old = node.outputs[0]
        new = out.output
        if new.producer() is None and old.is_graph_output():
            ident = ir.node("Identity", [new], outputs=[ir.Value(name=f"{new.name}/identity")],
                            name=f"{new.name}/identity_node")
            new_nodes.append(ident)
            new = ident.outputs[0]
        if new_nodes:
            graph.insert_before(node, new_nodes)
        orphans.extend(v for v in node.inputs if v is not None)
        name = old.name
        if new.type is None and old.type is not None:
            new.type = old.type
        if new.shape is None and old.shape is not None:
            new.shape = old.shape
        old.replace_all_uses_with(new, replace_graph_outputs=True)
        if new.producer() is not None and name:
            old.name = None
            new.name = name
        for extra in node.outputs[1:]:
            if extra.uses() or extra.is_graph_output():
                raise BadInputError(f"node {node.name!r} ({node.op_type}): extra outputs are used; cannot replace it")
        graph.remove(node, safe=True)
    _remove_orphans(orphans)


#: New constants with at most this many elements are shared between rewrites when equal.
_SHARED_CONSTANT_ELEMENTS = 16


def _annotations(model: ir.Model) -> dict[str, tuple[Any, Any]]:
    """(type, shape) of every named node output, to undo the annotations shape inference adds."""
    return {
        v.name: (v.type, v.shape)
        for graph in model.graphs()
        for node in graph
        for v in node.outputs
        if v.name
    }


def _restore_annotations(model: ir.Model, annotations: dict[str, tuple[Any, Any]]) -> None:
    """Put back the original type/shape of node outputs (the result carries no more value_info
    than the input did; the replaced nodes' output names keep their declarations)."""
    for graph in model.graphs():
        for node in graph:
            for v in node.outputs:
                if v.name in annotations:
                    v.type, v.shape = annotations[v.name]


def _used_names(model: ir.Model) -> set[str]:
    """Every value and node name of the model (new names must avoid both)."""
    used = set(all_value_names(model))
    for graph in model.graphs():
        used.update(node.name for node in graph if node.name)
    return used


def _remove_orphans(values: list[ir.Value]) -> None:
    seen: set[int] = set()
    for value in values:
        if id(value) in seen:
            continue
        seen.add(id(value))
        if value.uses() or value.is_graph_output():
            continue
        graph = value.graph
        if value.is_initializer() and graph is not None:
            if value.is_graph_input():
                graph.inputs.remove(value)
            graph.initializers.pop(value.name, None)
            continue
        producer = value.producer()
        if (
            producer is not None
            and producer.op_type == "Constant"
            and canonical_domain(producer.domain) == STANDARD
            and producer.graph is not None
        ):
            producer.graph.remove(producer, safe=True)


def _set_opset(model: ir.Model, target: int) -> None:
    """Convert the model's standard ops to ``target`` (opset-upgrade pass; downgrades attempted)."""
    if standard_opset(model) == 0:
        model.opset_imports[STANDARD] = target
        return
    from qonnx_tools.passes.opset_upgrade import OpsetUpgrade

    OpsetUpgrade(target=target, allow_downgrade=True)(model)


def _drop_unused_qonnx_imports(model: ir.Model) -> None:
    used = set()
    for graph in model.graphs():
        for node in graph:
            used.add(canonical_domain(node.domain))
    for function in model.functions.values():
        for node in function:
            used.add(canonical_domain(node.domain))
    for imports in (model.opset_imports, model.graph.opset_imports):
        for domain in list(imports):
            if is_qonnx_domain(domain) and canonical_domain(domain) not in used:
                del imports[domain]


def _raise_ir_version(model: ir.Model) -> None:
    ids = [onnx.helper.make_opsetid(d, v) for d, v in model.opset_imports.items()]
    needed = onnx.helper.find_min_ir_version_for(ids, ignore_unknown=True)
    if not model.ir_version or model.ir_version < needed:
        model.ir_version = needed


def _infer_shapes(model: ir.Model) -> None:
    """Add shape/type annotations (rules use X's rank, static shape and dtype); failures are ignored."""
    import warnings

    from qonnx_tools.passes.infer_shapes import InferShapes

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            InferShapes()(model)
        except QonnxToolsError:
            pass
