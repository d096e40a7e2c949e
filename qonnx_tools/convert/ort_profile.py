"""The onnxruntime profile of QCDQ (``convert(model, to="qcdq")``, ``--target ort``, the default).

onnxruntime fuses DequantizeLinear -> op -> QuantizeLinear groups into integer kernels
(QLinearConv, QGemm, MatMulIntegerToFloat, QLinearAdd ...) only in certain forms. Three exact
rewrites of the lowered graph put more layers into those forms (each pass proves or argues its
exactness in its docstring; every corpus model's output is checked against the QONNX original):

- ``fold-batchnorm-into-qdq``: Conv -> BatchNormalization -> QuantizeLinear becomes a Conv with
  per-channel weight scales and an int32 bias, where every reachable output code is proved
  unchanged (a Conv followed by BatchNormalization otherwise stays float);
- ``remove-relu-before-quantize``: a Relu whose quantizer clamps at the zero point anyway
  (onnxruntime fuses Conv + Relu into a float FusedConv first, and then no QDQ group is left);
- ``activations-to-uint8``: int8 activation codes behind a Clip (sub-8-bit signed
  activations) move to uint8 with the zero point + 128. onnxruntime converts adjacent int8
  QuantizeLinear -> DequantizeLinear pairs to uint8 itself, but not when a Clip sits between
  them, and its x86 kernels take uint8 activations only.

What stays float, and why, is listed in the notes (one line per layer).
"""

from __future__ import annotations

from qonnx_tools._ir import ir
from qonnx_tools.convert.result import ConversionResult


def apply_ort_profile(result: ConversionResult) -> None:
    """Run the three rewrites on ``result.model`` (in place) and add what they did to the notes."""
    apply_ort_rewrites(result.model, result.notes)


def apply_ort_rewrites(model: ir.Model, notes: list[str], *, uint8: bool = True, label: str = "ort profile") -> None:
    """The rewrites on a QCDQ ``model`` (in place), what they did appended to ``notes`` (prefixed ``label``);
    ``uint8=False`` leaves out ``activations-to-uint8`` (to_qop runs it itself, as its option says)."""
    from qonnx_tools.passes.activations_to_uint8 import ActivationsToUint8
    from qonnx_tools.passes.fold_batchnorm_into_qdq import FoldBatchnormIntoQdq
    from qonnx_tools.passes.remove_relu_before_quantize import RemoveReluBeforeQuantize

    def count(op_type: str) -> int:
        return sum(1 for node in model.graph if node.op_type == op_type and node.domain in ("", "ai.onnx"))

    before = count("BatchNormalization")
    fold = FoldBatchnormIntoQdq()
    fold(model)
    folded = before - count("BatchNormalization")
    if folded:
        notes.append(f"{label}: BatchNormalization folded into {folded} Conv(s) as per-channel weight scales and "
                     "an int32 bias (every reachable output code proved unchanged), so they run as QLinearConv")
    notes.extend(f"{label}: BatchNormalization kept: {line}" for line in fold.declined)

    before = count("Relu")
    relu = RemoveReluBeforeQuantize()
    relu(model)
    if before - count("Relu"):
        notes.append(f"{label}: {before - count('Relu')} Relu(s) before a QuantizeLinear that clamps at its zero "
                     "point removed (exact; onnxruntime would fuse them into a float Conv first)")

    if not uint8:
        return
    shift = ActivationsToUint8()
    if shift(model).modified:
        notes.append(f"{label}: int8 activations behind a Clip moved to uint8 (zero point + 128, exact), "
                     "the container onnxruntime's x86 integer kernels take")
    notes.extend(f"{label}: stays int8: {line}" for line in shift.declined)
