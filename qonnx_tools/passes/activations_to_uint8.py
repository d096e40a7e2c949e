"""activations-to-uint8: int8 activation Q/DQ pairs become uint8 pairs with the zero point moved by 128.

onnxruntime's x86 integer kernels take uint8 activations (u8 x s8); a QOp model with int8
activations runs its slower s8 x s8 path (measured 4.6-10.5x slower than the QCDQ form on
seed_qop_conv). For QCDQ onnxruntime shifts activations to uint8 itself while fusing; a QOp
model is run as written, so the converter does it (``to_qop(activation_type="uint8")``).

The rewrite, for a QuantizeLinear of run-time data whose zero point is an int8 constant and
whose every reader is a DequantizeLinear or an integer Clip leading only to
DequantizeLinears (the QCDQ activation form):

* QuantizeLinear(x, s, zp) -> QuantizeLinear(x, s, zp + 128) in uint8;
* Clip(q, lo, hi) -> Clip(q, lo + 128, hi + 128) in uint8;
* DequantizeLinear(q, s, zp) -> DequantizeLinear(q, s, zp + 128).

Exact: q + 128 is a bijection of int8 onto uint8 that commutes with QuantizeLinear's
saturation (``sat_u8(r + zp + 128) = sat_i8(r + zp) + 128`` for an integer r), with Clip, and
DequantizeLinear computes ``((q + 128) - (zp + 128)) * s = (q - zp) * s``. Every reader of a
rewritten integer tensor is rewritten, so no int8 consumer sees uint8 data. A pair with
another reader (a graph output, an integer layer) is left alone with the reason.

Saturation. On x86 without VNNI, onnxruntime's u8 x s8 kernels add pairs of products into
int16 with saturation (``runtime.ort_u8s8_saturates``); its s8 x s8 path does not. A pair of
products stays within int16 when ``2 * 255 * |w - zp_w| <= 32767``, i.e. weight codes within
+-64 of their zero point. So an activation is moved to uint8 only when every Conv / MatMul /
Gemm its dequantized values reach (through data movement) has such constant weights; one
feeding a layer of full-range 8-bit weights stays int8 (exact everywhere, slower), with the
reason. The rule is the file's, not the converting machine's: the same file must be exact on
every CPU onnxruntime runs on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qonnx_tools._ir import ir
from qonnx_tools.constants import constant_array
from qonnx_tools.decline import Decline
from qonnx_tools.domains import STANDARD, canonical_domain
from qonnx_tools.graph_order import topological_order
from qonnx_tools.passes._rewrite import all_value_names, replace_constant_input
from qonnx_tools.passes.base import PassResult, QonnxPass
from qonnx_tools.passes.move_into_integer_domain import is_op

_SHIFT = 128
#: largest |w - zp_w| for which two u8 x s8 products cannot saturate an int16 sum: 2 * 255 * 64 = 32640
SAFE_WEIGHT_CODE = 64
_LINEAR = ("Conv", "MatMul", "Gemm", "ConvTranspose")
#: ops a dequantized activation may pass through on its way to a layer (they keep its values)
_MOVEMENT = ("Reshape", "Flatten", "Transpose", "Squeeze", "Unsqueeze", "MaxPool", "Identity", "Relu",
             "Pad", "Slice", "Concat", "Split", "Gather")



def _int8_constant(value: ir.Value | None) -> np.ndarray | None:
    array = constant_array(value)
    return array if array is not None and array.dtype == np.int8 else None


@dataclass
class _Plan:
    """One int8 activation quantizer that can move to uint8: the inputs to rewrite."""

    q: ir.Node
    zp: np.ndarray
    clips: dict[ir.Node, tuple[np.ndarray, np.ndarray]]
    dqs: dict[ir.Node, np.ndarray]


@dataclass
class ActivationsToUint8(QonnxPass, name="activations-to-uint8"):
    """int8 activation QuantizeLinear -> [Clip] -> DequantizeLinear chains become uint8 (zero point + 128, exact)"""

    def call(self, model: ir.Model) -> PassResult:
        quantizers = [n for n in topological_order(model.graph) if is_op(n, "QuantizeLinear")]
        plans: dict[ir.Node, _Plan | Decline] = {}
        for q in quantizers:
            plan = _plan(q)
            if not (isinstance(plan, Decline) and plan.reason == _NOT_INT8):
                plans[q] = plan
        # A layer reads and writes one container (onnxruntime's QLinear kernels write the input's):
        # the quantizers a layer connects move together or not at all, else QOp needs relabelling.
        groups = _groups(quantizers)
        modified = False
        used = all_value_names(model)
        for q, plan in plans.items():
            if isinstance(plan, Decline):
                self.decline(plan, q)
                continue
            blocker = next((p for p in groups.get(q, ()) if isinstance(plans.get(p), Decline)), None)
            if blocker is not None:
                self.decline(Decline(f"a layer connects it to {blocker.name or 'a quantizer'}, which stays int8", q))
                continue
            _apply(plan, used)
            modified = True
        return PassResult(model, modified)


_NOT_INT8 = "not an int8 activation"


def _plan(q: ir.Node) -> _Plan | Decline:
    data = q.inputs[0] if q.inputs else None
    zp = _int8_constant(q.inputs[2]) if len(q.inputs) > 2 else None
    if data is None or constant_array(data) is not None or zp is None:
        return Decline(_NOT_INT8)
    readers = _readers(q.outputs[0])
    if isinstance(readers, Decline):
        return readers
    clips, dqs = readers
    plan = _Plan(q, zp, {}, {})
    for node in dqs:
        dq_zp = _int8_constant(node.inputs[2]) if len(node.inputs) > 2 else None
        if dq_zp is None:
            return Decline("a DequantizeLinear reading it has no int8 zero point", node)
        unsafe = _wide_weight_layer(node.outputs[0])
        if unsafe is not None:
            return unsafe
        plan.dqs[node] = dq_zp
    for clip in clips:
        lo = _int8_constant(clip.inputs[1]) if len(clip.inputs) > 1 else None
        hi = _int8_constant(clip.inputs[2]) if len(clip.inputs) > 2 else None
        if lo is None or hi is None:
            return Decline("a Clip on its integers has no constant int8 bounds", clip)
        plan.clips[clip] = (lo, hi)
    return plan


def _apply(plan: _Plan, used: set[str]) -> None:
    q = plan.q
    replace_constant_input(q, 2, _to_uint8(plan.zp), f"{q.name or 'q'}_zp_u8", used)
    for clip, (lo, hi) in plan.clips.items():
        replace_constant_input(clip, 1, _to_uint8(lo), f"{clip.name or 'clip'}_min_u8", used)
        replace_constant_input(clip, 2, _to_uint8(hi), f"{clip.name or 'clip'}_max_u8", used)
    for node, dq_zp in plan.dqs.items():
        replace_constant_input(node, 2, _to_uint8(dq_zp), f"{node.name or 'dq'}_zp_u8", used)
    for value in [q.outputs[0], *(c.outputs[0] for c in plan.clips)]:
        value.type = ir.TensorType(ir.DataType.UINT8)


#: float ops between a layer and its output quantizer (bias, BatchNormalization, activation)
_EPILOGUE = ("Add", "Sub", "Mul", "Div", "Relu", "BatchNormalization", "Clip", *_MOVEMENT)


def _groups(quantizers: list[ir.Node]) -> dict[ir.Node, list[ir.Node]]:
    """Quantizer -> every quantizer joined to it through layers (input quantizer -> layer -> output
    quantizer), as connected groups (union-find over the layers each quantizer's values reach)."""
    parent = {q: q for q in quantizers}

    def find(q: ir.Node) -> ir.Node:
        while parent[q] is not q:
            parent[q] = parent[parent[q]]
            q = parent[q]
        return q

    for q in quantizers:
        for layer in _layers_reached(q.outputs[0]):
            for out in _output_quantizers(layer):
                if out in parent:
                    parent[find(out)] = find(q)
    members: dict[ir.Node, list[ir.Node]] = {}
    for q in quantizers:
        members.setdefault(find(q), []).append(q)
    return {q: members[find(q)] for q in quantizers}


def _uses_through(values: list[ir.Value], through: tuple[str, ...]) -> list[tuple[ir.Node, int]]:
    """Every (node, input index) reading ``values``, following the outputs of standard ops in ``through``
    instead of returning them (each value visited once: linear in the part of the graph reached)."""
    found: list[tuple[ir.Node, int]] = []
    seen: set[int] = set()
    pending = list(values)
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        for user, index in current.uses():
            if user.op_type in through and canonical_domain(user.domain) == STANDARD:
                pending.extend(user.outputs)
            else:
                found.append((user, index))
    return found


def _layers_reached(value: ir.Value) -> list[ir.Node]:
    """The Conv/MatMul/Gemm nodes the integers ``value`` reach through Clip, DequantizeLinear and data movement."""
    return [user for user, _ in _uses_through([value], ("Clip", "DequantizeLinear", *_MOVEMENT))
            if user.op_type in _LINEAR and canonical_domain(user.domain) == STANDARD]


def _output_quantizers(layer: ir.Node) -> list[ir.Node]:
    """The QuantizeLinear nodes a layer's output reaches through its float epilogue."""
    return [user for user, _ in _uses_through(list(layer.outputs), _EPILOGUE) if is_op(user, "QuantizeLinear")]


def _to_uint8(array: np.ndarray) -> np.ndarray:
    return (array.astype(np.int16) + _SHIFT).astype(np.uint8)


def _readers(value: ir.Value) -> tuple[list[ir.Node], list[ir.Node]] | Decline:
    """The Clips and DequantizeLinears reading ``value`` (through Clips), or why another reader stops it."""
    clips: list[ir.Node] = []
    dqs: list[ir.Node] = []
    pending = [value]
    while pending:  # bounded by the chain's length: each value is visited once
        current = pending.pop()
        if current.is_graph_output():
            return Decline("its integers are a graph output", current)
        for user, index in current.uses():
            if is_op(user, "DequantizeLinear") and index == 0:
                dqs.append(user)
            elif is_op(user, "Clip") and index == 0 and user not in clips:
                clips.append(user)
                pending.append(user.outputs[0])
            else:
                return Decline(f"its integers are read by {user.op_type}", user)
    if not dqs:
        return Decline("no DequantizeLinear reads it", value)
    return clips, dqs


def _wide_weight_layer(value: ir.Value) -> Decline | None:
    """Why the layers ``value`` reaches could saturate in u8 x s8 (None: all have weights within
    SAFE_WEIGHT_CODE of their zero point). A QuantizeLinear ends the walk: the next activation is
    judged on its own; other float arithmetic forms no integer kernel from this activation."""
    for user, index in _uses_through([value], _MOVEMENT):
        if user.op_type not in _LINEAR or canonical_domain(user.domain) != STANDARD:
            continue
        weight = user.inputs[1 - index] if index in (0, 1) and len(user.inputs) > 1 else None
        span = _weight_span(weight)
        if span is None:
            return Decline(f"it feeds {user.op_type} whose other input is no dequantized constant "
                           "(u8 x s8 kernels may saturate)", user)
        if span > SAFE_WEIGHT_CODE:
            return Decline(f"it feeds {user.op_type} with 8-bit weights (codes up to {span} from the zero point; "
                           f"u8 x s8 kernels saturate int16 pair sums without VNNI above {SAFE_WEIGHT_CODE})",
                           user)
    return None


def _weight_span(weight: ir.Value | None) -> int | None:
    """max |w - zp_w| of a weight DequantizeLinear(constant codes [-> Clip]), or None when not one."""
    dq = weight.producer() if weight is not None else None
    while dq is not None and dq.op_type in ("Transpose", "Reshape") and canonical_domain(dq.domain) == STANDARD:
        dq = dq.inputs[0].producer() if dq.inputs and dq.inputs[0] is not None else None
    if not is_op(dq, "DequantizeLinear"):
        return None
    codes = constant_array(dq.inputs[0])
    if codes is None and is_op(dq.inputs[0].producer(), "Clip"):
        codes = constant_array(dq.inputs[0].producer().inputs[0])
    if codes is None or codes.dtype.kind not in "iu":
        return None
    zp = constant_array(dq.inputs[2]) if len(dq.inputs) > 2 else None
    axis = dq.attributes.get_int("axis", 1)
    zp_b = np.zeros(1) if zp is None else np.asarray(zp, np.int64)
    if zp_b.size > 1:
        shape = [1] * codes.ndim
        shape[axis % codes.ndim] = zp_b.size
        zp_b = zp_b.reshape(shape)
    return int(np.max(np.abs(codes.astype(np.int64) - zp_b))) if codes.size else 0
