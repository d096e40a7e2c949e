"""``to_qop``: QONNX -> QCDQ first if needed, the opset, then the phases in order.

1. ``move-into-integer-domain`` (``qonnx_tools.passes.move_into_integer_domain``) on the
   conversion's editor, so that the layers meet integer data;
2. for each Conv / MatMul / Gemm in topological order: ``match`` (phase 2), then
   ``rewrite`` (phase 4, which plans the weights with ``weights``, phase 3); a layer
   that declines stays in QDQ/float form and is listed with the reason;
3. one sweep of what the moves and the rewrites left without readers.
"""

from __future__ import annotations

from qonnx_tools._ir import ir
from qonnx_tools.convert.qcdq import standard_opset, to_qcdq
from qonnx_tools.convert.qop.match import match
from qonnx_tools.convert.qop.rewrite import rewrite
from qonnx_tools.convert import ACTIVATION_TYPE_FLAG, OPSET_FLAG
from qonnx_tools.convert.qop.state import Conversion
from qonnx_tools.convert.result import ConversionResult, Unconverted
from qonnx_tools.decline import Decline
from qonnx_tools.domains import STANDARD, is_qonnx_domain
from qonnx_tools.errors import BadInputError
from qonnx_tools.graph_order import topological_order
from qonnx_tools.passes.move_into_integer_domain import Editor, MoveIntoIntegerDomain, is_op


def to_qop(
    model: ir.Model,
    *,
    opset: int | None = None,
    allow_partial: bool = False,
    requantize_bias: bool = False,
    fold_batchnorm: bool = False,
    activation_type: str = "uint8",
    float_outputs: bool = True,
) -> ConversionResult:
    """Convert a QCDQ (or QONNX) model to QOp form in place; see ``qonnx_tools.convert.qop``.

    ``opset``: ai.onnx opset of the result (upgraded first when above the model's;
    never lowered). ``requantize_bias`` rounds a bias that int32 at scale
    x_scale * w_scale cannot hold exactly (outputs near a tie may move a step); by default
    such a layer keeps its bias in float after ConvInteger/MatMulInteger (exact), or, without
    ``float_outputs``, is refused. ``fold_batchnorm`` folds a
    BatchNormalization between a layer and its output quantizer. ``activation_type="uint8"``
    (the default) first moves int8 activation Q/DQ pairs to uint8 with the zero point + 128
    (``activations-to-uint8``, exact): onnxruntime's x86 integer kernels take uint8
    activations and run int8 ones on a slower path; ``"int8"`` keeps the model's containers.
    ``float_outputs`` (the default): a layer whose output has no quantizer (it feeds
    BatchNormalization, another float op or a graph output) becomes ConvInteger/MatMulInteger
    with the rescale and bias in float; False leaves it unconverted.
    """
    if activation_type not in ("uint8", "int8"):
        raise BadInputError(f"to_qop: activation_type must be uint8 or int8, not {activation_type!r}")
    notes: list[str] = []
    unconverted: list[Unconverted] = []
    converted: list[Unconverted] = []
    if any(is_qonnx_domain(node.domain) for node in ir.traversal.RecursiveGraphIterator(model.graph)):
        first = to_qcdq(model, opset=opset, allow_partial=True)
        model = first.model
        lowered = {str(c) for c in first.converted}  # per-node lines: kept structured in ``converted``
        notes.extend(f"qcdq: {n}" for n in first.notes if n not in lowered)
        unconverted.extend(first.unconverted)
        converted = list(first.converted)
    _prepare_opset(model, opset, notes)
    # exact first: a BatchNormalization proved foldable and a redundant Relu go before the layers are matched
    # (``fold_batchnorm`` then only concerns the rest, and rounds)
    from qonnx_tools.convert.ort_profile import apply_ort_rewrites

    apply_ort_rewrites(model, notes, uint8=False, label="exact")
    if activation_type == "uint8":
        from qonnx_tools.passes.activations_to_uint8 import ActivationsToUint8

        shift = ActivationsToUint8()
        if shift(model).modified:
            notes.append("int8 activations moved to uint8 (zero point + 128, exact): onnxruntime's preferred "
                         f"container ({ACTIVATION_TYPE_FLAG} int8 keeps them)")
        notes.extend(f"activations-to-uint8 left alone: {line}" for line in shift.declined)
    conv = Conversion(model, Editor(model), standard_opset(model), requantize_bias, fold_batchnorm, float_outputs)
    _run(conv)
    notes.extend(conv.notes)
    unconverted.extend(conv.unconverted)
    result = ConversionResult(model, target="qop", unconverted=unconverted, notes=notes, converted=converted)
    if not allow_partial:
        result.raise_if_partial()
    return result


def _prepare_opset(model: ir.Model, opset: int | None, notes: list[str]) -> None:
    current = standard_opset(model)
    if opset is not None:
        if opset < 10:
            raise BadInputError(f"to_qop: QLinearConv/QLinearMatMul need ai.onnx opset >= 10, not {opset}")
        if opset < current:
            raise BadInputError(f"to_qop: the model is at opset {current}; it is not lowered to opset {opset}")
        if opset > current:
            from qonnx_tools.passes.opset_upgrade import OpsetUpgrade

            OpsetUpgrade(target=opset)(model)
            notes.append(f"ai.onnx opset upgraded from {current} to {opset}")
            return
    if current < 10:
        if current == 0:
            model.opset_imports[STANDARD] = 10
            return
        raise BadInputError(
            f"to_qop: the model is at ai.onnx opset {current}; QOp needs >= 10 ({OPSET_FLAG} 13 upgrades it first)"
        )


def _run(conv: Conversion) -> None:
    graph = conv.graph
    moved = MoveIntoIntegerDomain().move(conv.edit)
    for node in topological_order(graph):
        if node.graph is not graph or not is_op(node, "Conv", "MatMul", "Gemm"):
            continue
        try:
            rewrite(conv, match(conv, node))
        except Decline as why:
            conv.unconverted.append(Unconverted(node.name or "", node.op_type, why.reason, why.detail(node)))
    conv.edit.sweep()
    if moved:
        conv.notes.append(f"{moved} node(s) moved into the integer domain or removed as exact no-ops")
    if conv.converted:
        done = ", ".join(f"{n} {op}" for op, n in sorted(conv.converted.items()))
        conv.notes.append(f"converted: {done}")
