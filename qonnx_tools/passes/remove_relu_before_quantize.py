"""remove-relu-before-quantize: Relu -> QuantizeLinear whose codes are clamped at or above the zero
point (every zero point, per axis) loses the Relu (exact).

A negative x quantizes to a code at most the zero point (``round(x / s) <= 0``; QuantizeLinear's
scale is positive) and 0 to the zero point itself; when every reader of the codes clamps them
below at the zero point or higher (the container's minimum is the zero point, or a Clip's lower
bound is at least it), Relu(x) and x give the same codes. onnxruntime fuses Conv + Relu into a
float FusedConv before it looks for QDQ groups, so a Relu left between a Conv and its output
quantizer keeps that Conv in float (MobileNet v1: 12 of 27 Convs).

Left alone: a Relu with another reader or whose output is a graph output, a quantizer whose
codes reach anything but a DequantizeLinear (through constant Clips), a zero point that is not a
constant, a non-saturating (float8) quantizer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qonnx_tools._ir import ir
from qonnx_tools.constants import constant_array
from qonnx_tools.decline import Decline
from qonnx_tools.passes.base import PassResult, QonnxPass
from qonnx_tools.passes.move_into_integer_domain import is_op



def _codes_floor(q: ir.Node) -> int | Decline:
    """The lowest code any reader of QuantizeLinear ``q``'s output can see."""
    zp = constant_array(q.inputs[2]) if len(q.inputs) > 2 else None
    if zp is None or zp.size == 0 or zp.dtype.kind not in "iu":
        return Decline("the quantizer has no constant integer zero point", q)
    floor = None
    for user, index in q.outputs[0].uses():
        if is_op(user, "DequantizeLinear") and index == 0:
            low = int(np.iinfo(zp.dtype).min)
        elif is_op(user, "Clip") and index == 0:
            lo = constant_array(user.inputs[1]) if len(user.inputs) > 1 else None
            if lo is None or lo.size != 1 or any(not is_op(u, "DequantizeLinear") for u, _ in user.outputs[0].uses()):
                return Decline("a Clip on the codes has no constant lower bound or other readers", user)
            low = int(lo.reshape(-1)[0])
        else:
            return Decline(f"the codes are read by {user.op_type}", user)
        floor = low if floor is None else min(floor, low)
    if q.outputs[0].is_graph_output() or floor is None:
        return Decline("the codes are a graph output or unread", q)
    return max(floor, int(np.iinfo(zp.dtype).min)) - int(zp.max())  # per-axis: the highest zero point


@dataclass
class RemoveReluBeforeQuantize(QonnxPass, name="remove-relu-before-quantize"):
    """Relu -> QuantizeLinear whose codes are clamped at or above its zero point: the Relu goes (exact)"""

    def call(self, model: ir.Model) -> PassResult:
        def rewrite(relu: ir.Node):
            out = relu.outputs[0]
            uses = out.uses()
            if out.is_graph_output() or len(uses) != 1 or not is_op(uses[0][0], "QuantizeLinear") or uses[0][1] != 0:
                return Decline("not a Relu read only by a QuantizeLinear")
            q = uses[0][0]
            if q.attributes.get_int("saturate", 1) == 0 or q.outputs[0].dtype not in (
                    ir.DataType.UINT8, ir.DataType.INT8, ir.DataType.UINT16, ir.DataType.INT16,
                    ir.DataType.UINT4, ir.DataType.INT4, None):
                return Decline("the quantizer is not an integer one", q)
            floor = _codes_floor(q)
            if isinstance(floor, Decline):
                return floor
            if floor < 0:
                return Decline("codes below the zero point reach a DequantizeLinear", q)
            q.replace_input_with(0, relu.inputs[0])
            relu.graph.remove(relu, safe=True)
            return True

        relus = [n for n in model.graph if is_op(n, "Relu")]
        return PassResult(model, self.rewrite_each(relus, rewrite, quiet=("not a Relu read only by a QuantizeLinear",)))
