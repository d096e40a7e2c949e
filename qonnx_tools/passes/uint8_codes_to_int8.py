"""uint8-codes-to-int8: a uint8 QuantizeLinear -> Clip[lo, hi] -> DequantizeLinear chain whose codes
stay within [0, 127] (``0 <= lo``, ``hi <= 127``, zero point <= 127) becomes int8 with the same
numbers (exact).

Targets that compute only in signed 8 bits (the DPU) take unsigned activations as int8 whose
range starts at 0. With the Clip's bounds inside [0, 127], int8 saturation ([-128, 127]) and
uint8 saturation ([0, 255]) differ only for codes the Clip moves to ``lo`` or ``hi`` anyway, so
every code, and every DequantizeLinear output ``(q - zp) * s``, is unchanged. Left alone: a chain
without such a Clip (its codes use all of uint8), codes read by anything but Clip/DequantizeLinear,
or codes that are a graph output.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qonnx_tools._ir import ir
from qonnx_tools.constants import constant_array
from qonnx_tools.decline import Decline
from qonnx_tools.passes._codes import code_readers
from qonnx_tools.passes._rewrite import all_value_names, replace_constant_input
from qonnx_tools.passes.base import PassResult, QonnxPass
from qonnx_tools.passes.move_into_integer_domain import is_op

_NOT_UINT8 = "not a uint8 quantizer of run-time data"


@dataclass
class Uint8CodesToInt8(QonnxPass, name="uint8-codes-to-int8"):
    """uint8 Q -> Clip[lo >= 0, hi <= 127] -> DQ chains become int8 with the same codes (exact)"""

    def call(self, model: ir.Model) -> PassResult:
        used = all_value_names(model)

        def rewrite(q: ir.Node):
            zp = constant_array(q.inputs[2]) if len(q.inputs) > 2 and q.inputs[2] is not None else None
            if zp is None or zp.dtype != np.uint8 or constant_array(q.inputs[0]) is not None:
                return Decline(_NOT_UINT8)
            readers = code_readers(q)
            if isinstance(readers, Decline):
                return readers
            clips, dqs = readers.clips, readers.dqs
            bounds = [(constant_array(c.inputs[1]), constant_array(c.inputs[2])) for c in clips]
            if readers.lo < 0 or readers.hi > 127 or int(zp.max()) > 127:  # a direct reader sees all of uint8
                return Decline("its codes or zero point reach beyond 127", q)
            if any(constant_array(d.inputs[2]) is None or constant_array(d.inputs[2]).dtype != np.uint8 for d in dqs
                   if len(d.inputs) > 2):
                return Decline("a DequantizeLinear reading it has no uint8 zero point", q)
            replace_constant_input(q, 2, zp.astype(np.int8), f"{q.name or 'q'}_zp_i8", used)
            for clip, (lo, hi) in zip(clips, bounds):
                replace_constant_input(clip, 1, lo.astype(np.int8), f"{clip.name or 'clip'}_min_i8", used)
                replace_constant_input(clip, 2, hi.astype(np.int8), f"{clip.name or 'clip'}_max_i8", used)
            for dq in dqs:
                if len(dq.inputs) > 2:
                    replace_constant_input(dq, 2, constant_array(dq.inputs[2]).astype(np.int8),
                                           f"{dq.name or 'dq'}_zp_i8", used)
            for value in [q.outputs[0], *(c.outputs[0] for c in clips)]:
                value.type = ir.TensorType(ir.DataType.INT8)
            return True

        quantizers = [n for n in model.graph if is_op(n, "QuantizeLinear")]
        return PassResult(model, self.rewrite_each(quantizers, rewrite, quiet=(_NOT_UINT8,)))
