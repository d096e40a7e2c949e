"""Conversions between quantized-model forms: QONNX ⇄ QCDQ, and → QOp.

``convert(model, to="qcdq")`` converts in place and returns a ConversionResult;
with ``allow_partial=False`` (default) it raises ConversionError listing every
node it could not convert, so no QONNX op is ever left behind silently.

The model is tidied (the ``tidy`` pass) before and after the conversion: before,
so that weight Transposes move into their quantizers and static graph inputs are
constants (a lowered weight stays one DequantizeLinear of a constant); after, so
that the output holds nothing onnxsim/onnxslim or qonnx's cleanup would remove
(no-op arithmetic, constant subgraphs, initializers listed as inputs). A model
with channels-last ops is turned back to channels-first (``to-channels-first``)
before a conversion to standard ONNX, and the result's notes say so.
"""

from __future__ import annotations

from typing import Any

from qonnx_tools._ir import ir
from qonnx_tools.convert.result import ConversionResult, Unconverted
from qonnx_tools.domains import CHANNELS_LAST, canonical_domain
from qonnx_tools.errors import BadInputError

TARGETS = ("qcdq", "qop", "qonnx")

#: The ``qonnx convert`` flags of converter options, named by the hints in refusal reasons (the
#: CLI defines its flags from these names, so that a hint never names a flag it lacks).
FOLD_BATCHNORM_FLAG = "--fold-batchnorm"  # to_qop(fold_batchnorm=True)
REQUANTIZE_BIAS_FLAG = "--requantize-bias"  # to_qop(requantize_bias=True); the default is False
OPSET_FLAG = "--opset"  # opset=N
FLOAT_EPILOGUE_FLAG = "--float-epilogue"  # to_qop(float_outputs=True), the default; --no-float-epilogue: False
ACTIVATION_TYPE_FLAG = "--activation-type"
TARGET_FLAG = "--target"  # convert(model, to="qcdq", target="ort"|"openvino"|"tvm"|"tensorrt")  # to_qop(activation_type="uint8"|"int8"), default uint8


def convert(model: ir.Model, to: str, **options: Any) -> ConversionResult:
    """Convert ``model`` in place to ``to`` (qcdq, qop or qonnx); options go to the converter."""
    from qonnx_tools.passes import run_passes

    if to not in TARGETS:
        raise BadInputError(f"unknown conversion target {to!r}; choose one of {', '.join(TARGETS)}")
    run_passes(model, "tidy")
    channels_last = to in ("qcdq", "qop") and any(
        canonical_domain(node.domain) == CHANNELS_LAST for node in model.graph.all_nodes()
    )
    if channels_last:  # standard ONNX has no channels-last ops: go back to NCHW first, and say so
        run_passes(model, "to-channels-first")
    result = _convert(model, to, options)
    if channels_last:
        result.notes.insert(0, "channels-last ops turned back into standard channels-first ops (to-channels-first)")
    run_passes(model, "tidy")
    return result


def _convert(model: ir.Model, to: str, options: dict[str, Any]) -> ConversionResult:
    if to == "qcdq":
        from qonnx_tools.convert.qcdq import to_qcdq
        from qonnx_tools.convert.tensorrt import PROFILES, to_tensorrt_qcdq

        target = options.pop("target", None) or "ort"
        if target not in PROFILES:
            raise BadInputError(f"unknown QCDQ target {target!r}; choose one of {', '.join(PROFILES)}")
        if target == "tensorrt":  # float weights always; no partial result (see convert.tensorrt)
            return to_tensorrt_qcdq(model, opset=options.get("opset"))
        result = to_qcdq(model, **options)
        if target == "ort":
            from qonnx_tools.convert.ort_profile import apply_ort_profile

            apply_ort_profile(result)
        return result
    if to == "qop":
        from qonnx_tools.convert.qop import to_qop

        return to_qop(model, **options)
    if to == "qonnx":
        from qonnx_tools.convert.qonnx_raise import to_qonnx

        options.pop("opset", None)
        options.pop("keep_float_weights", None)
        options.pop("target", None)
        return to_qonnx(model, **options)
    raise AssertionError(to)


__all__ = [
    "convert", "ConversionResult", "Unconverted", "TARGETS",
    "FOLD_BATCHNORM_FLAG", "REQUANTIZE_BIAS_FLAG", "OPSET_FLAG", "ACTIVATION_TYPE_FLAG", "FLOAT_EPILOGUE_FLAG", "TARGET_FLAG",
]
