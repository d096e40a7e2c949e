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


from qonnx_tools._ir import ir
from qonnx_tools.decline import Decline
from qonnx_tools.passes._codes import code_readers
from qonnx_tools.passes.base import PassResult, QonnxPass
from qonnx_tools.passes.move_into_integer_domain import is_op



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
            readers = code_readers(q)
            if isinstance(readers, Decline):
                return readers
            if readers.lo - int(readers.zero_point.max()) < 0:  # per axis: the highest zero point
                return Decline("codes below the zero point reach a DequantizeLinear", q)
            q.replace_input_with(0, relu.inputs[0])
            relu.graph.remove(relu, safe=True)
            return True

        relus = [n for n in model.graph if is_op(n, "Relu")]
        return PassResult(model, self.rewrite_each(relus, rewrite, quiet=("not a Relu read only by a QuantizeLinear",)))
