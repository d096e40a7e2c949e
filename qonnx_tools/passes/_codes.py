"""Who reads the integer codes a QuantizeLinear writes, and which codes they can see.

Shared by the QCDQ rewrites that reason about an activation's codes (fold-batchnorm-into-qdq,
remove-relu-before-quantize, uint8-codes-to-int8): a rewrite is exact when it keeps every code
*some* reader sees, so the range that matters is the widest one: the container's when a
DequantizeLinear reads the codes directly, else the widest of the Clips reading them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qonnx_tools._ir import ir
from qonnx_tools.constants import constant_array
from qonnx_tools.decline import Decline
from qonnx_tools.passes.move_into_integer_domain import is_op


@dataclass
class CodeReaders:
    """The readers of one QuantizeLinear's codes and the widest code range any of them sees."""

    zero_point: np.ndarray  # the QuantizeLinear's (its dtype is the codes' container)
    clips: list[ir.Node]  # Clips of the codes, constant scalar bounds, read only by DequantizeLinear
    dqs: list[ir.Node]  # every DequantizeLinear reading the codes or a Clip's output
    lo: int
    hi: int


def code_readers(q: ir.Node) -> CodeReaders | Decline:
    """The readers of QuantizeLinear ``q``'s codes, or why they are not only [Clip ->] DequantizeLinear."""
    zp_value = q.inputs[2] if len(q.inputs) > 2 else None
    zero_point = constant_array(zp_value) if zp_value is not None else np.zeros((), np.uint8)
    if zero_point is None or zero_point.dtype.kind not in "iu":
        return Decline("the quantizer has no constant integer zero point", q)
    codes = q.outputs[0]
    if codes.is_graph_output():
        return Decline("the codes are a graph output", q)
    info = np.iinfo(zero_point.dtype)
    found = CodeReaders(zero_point, [], [], int(info.max), int(info.min))  # widened below
    for user, index in codes.uses():
        if is_op(user, "DequantizeLinear") and index == 0:
            found.dqs.append(user)
            lo, hi = int(info.min), int(info.max)
        elif is_op(user, "Clip") and index == 0:
            c_lo = constant_array(user.inputs[1]) if len(user.inputs) > 1 else None
            c_hi = constant_array(user.inputs[2]) if len(user.inputs) > 2 else None
            if c_lo is None or c_hi is None or c_lo.size != 1 or c_hi.size != 1:
                return Decline("a Clip on the codes has no constant scalar bounds", user)
            readers = user.outputs[0].uses()
            if user.outputs[0].is_graph_output() or any(not is_op(u, "DequantizeLinear") for u, _ in readers):
                return Decline("the clipped codes have a reader other than DequantizeLinear", user)
            found.clips.append(user)
            found.dqs.extend(u for u, _ in readers)
            lo, hi = max(int(info.min), int(c_lo.reshape(-1)[0])), min(int(info.max), int(c_hi.reshape(-1)[0]))
        else:
            return Decline(f"the codes are read by {user.op_type}", user)
        found.lo, found.hi = min(found.lo, lo), max(found.hi, hi)
    if not found.dqs:
        return Decline("no DequantizeLinear reads the codes", q)
    return found
