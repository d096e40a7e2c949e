"""The TensorRT profile of QCDQ (``convert(model, to="qcdq", target="tensorrt")``).

TensorRT's explicit quantization reads symmetric signed int8 Q/DQ (zero-point 0), no Clip
between QuantizeLinear and DequantizeLinear, Q/DQ on the inputs of Conv/MatMul/Gemm, and
weights either in float behind Q/DQ (pytorch_quantization's export) or pre-quantized: an
int8 initializer -> DequantizeLinear (TensorRT's "quantized weights"), in the narrow range
[-127, 127], per output channel or per tensor. This profile writes the pre-quantized form:
the integers are computed here, exactly as the quantizer does, so no Clip is ever needed on a
weight (a float weight behind Q/DQ would need one wherever the quantizer clamps). It refuses:

- an activation quantizer must be 8 bits, signed, zero-point 0, not narrow: its
  QuantizeLinear then saturates to [-128, 127] as the quantizer does. Anything narrower
  would need a Clip (TensorRT takes none) or uint8 (TensorRT has none): refused, since no
  exact form exists;
- a weight quantizer (constant input) may have any bit width up to 8 and must have
  zero-point 0: its integers, as long as they lie in [-127, 127], are int8 values of the
  same scale. A weight whose integers reach -128 is refused;
- int32 bias quantizers become an int32 initializer -> DequantizeLinear, which TensorRT folds;
- FloatQuant must be E4M3 (TensorRT's FP8); BipolarQuant and Trunc become float arithmetic (bipolar
  weights: an int8 initializer -> DequantizeLinear, which TensorRT reads as pre-quantized weights).

Nothing is lowered when something is refused (``Refused``, each quantizer with its reason):
a TensorRT engine cannot hold a QONNX op, so there is no partial result. The notes name the
Conv/MatMul/Gemm layers TensorRT can run in int8 (DequantizeLinear on the data input and on the
weight) and those that stay float.
"""

from __future__ import annotations

import numpy as np

from qonnx_tools._ir import ir
from qonnx_tools.constants import constant_array
from qonnx_tools.convert.result import ConversionResult, Unconverted
from qonnx_tools.decline import Decline
from qonnx_tools.domains import QONNX, STANDARD, canonical_domain
from qonnx_tools.refusals import Refused, summary

#: The QCDQ profiles by target runtime. ``openvino`` and ``tvm`` are the plain lowering, which the
#: optional consumer tests run exactly in both (tests/consumers); ``ort`` (the default) adds three
#: exact rewrites onnxruntime needs to fuse more layers (convert.ort_profile).
PROFILES = ("ort", "openvino", "tvm", "tensorrt")
_LAYERS = ("Conv", "MatMul", "Gemm", "ConvTranspose")


def to_tensorrt_qcdq(model: ir.Model, *, opset: int | None = None) -> ConversionResult:
    """Lower ``model`` in place to TensorRT's QCDQ form, or raise Refused listing what TensorRT cannot run."""
    from qonnx_tools.convert.qcdq import to_qcdq

    refused = refusals(model)
    if refused:
        raise Refused(
            f"TensorRT cannot run {len(refused)} quantizer(s) exactly: " + "; ".join(str(u) for u in refused),
            refused, summary(refused, "quantizer(s) TensorRT cannot run exactly"),
        )
    result = to_qcdq(model, opset=opset, keep_float_weights=False)
    int8, other = _int8_layers(model)
    result.notes.append(f"TensorRT int8 layers: {len(int8)} of {len(int8) + len(other)}"
                        + (f"; float: {', '.join(other[:8])}" + (" ..." if len(other) > 8 else "") if other else ""))
    return result


def refusals(model: ir.Model) -> list[Unconverted]:
    """The QONNX quantizers TensorRT cannot run exactly, each with its reason (nothing is changed)."""
    return [Unconverted(node.name or "?", node.op_type, why.reason, why.detail(node)) for node, why in _refusals(model)]


def _refusals(model: ir.Model) -> list[tuple[ir.Node, Decline]]:
    out = []
    for node in model.graph.all_nodes():
        if canonical_domain(node.domain) != QONNX:
            continue
        if node.op_type == "FloatQuant":
            e, m = (constant_array(node.inputs[i]) if len(node.inputs) > i else None for i in (2, 3))
            if e is None or m is None or e.size != 1 or m.size != 1 or (float(e), float(m)) != (4.0, 3.0):
                shown = "?" if e is None or m is None else f"E{float(e.reshape(-1)[0]):g}M{float(m.reshape(-1)[0]):g}"
                out.append((node, Decline(f"float quantizer {shown}: TensorRT's FP8 is E4M3")))
            continue
        if node.op_type not in ("IntQuant", "Quant"):
            continue  # BipolarQuant and Trunc are written as float arithmetic, which TensorRT runs in float
        why = _judge(node)
        if why is not None:
            out.append((node, why))
    return out


def _judge(node: ir.Node) -> Decline | None:
    x = node.inputs[0] if node.inputs else None
    scale, zp, bits = (constant_array(node.inputs[i]) if len(node.inputs) > i else None for i in (1, 2, 3))
    if zp is None or bits is None or scale is None:
        return Decline("scale, zero-point or bit width not constant")
    if np.any(zp != 0):
        return Decline("non-zero zero-point (TensorRT quantizes symmetrically)")
    signed = bool(node.attributes.get_int("signed", 1))
    narrow = bool(node.attributes.get_int("narrow", 0))
    rounding = node.attributes.get_string("rounding_mode", "ROUND")
    values = constant_array(x)
    if values is None:  # an activation
        if int(np.max(bits)) != 8 or int(np.min(bits)) != 8:
            return Decline(f"activation of {float(np.max(bits)):g} bits (TensorRT takes no Clip between Q and DQ)")
        if not signed:
            return Decline("unsigned activation (TensorRT quantizes to int8 only)")
        if narrow:
            return Decline("narrow-range activation (TensorRT's QuantizeLinear saturates to [-128, 127])")
        if rounding.upper() not in ("ROUND", "HALF_EVEN"):
            return Decline(f"rounding mode {rounding} (QuantizeLinear rounds half to even)")
        return None
    if _is_bias(node):
        return None if int(np.max(bits)) <= 32 else Decline("bias of more than 32 bits")
    if int(np.max(bits)) > 8:
        return Decline(f"weight of {float(np.max(bits)):g} bits (TensorRT runs int8)")
    codes = _codes(values, scale, zp, bits, signed, narrow, rounding)
    if codes.size and (codes.min() < -127 or codes.max() > 127):
        return Decline(f"weight integers in [{int(codes.min())}, {int(codes.max())}]: TensorRT weights are "
                       "narrow [-127, 127]")
    return None


def _codes(values, scale, zp, bits, signed, narrow, rounding) -> np.ndarray:
    """The integers a weight quantizer produces (IntQuant's own arithmetic, before its rescale)."""
    from qonnx_tools.ops._rounding import int_bounds, normalise_rounding_mode
    from qonnx_tools.ops.intquant import _int_codes

    lo, hi = int_bounds(signed, narrow, bits)
    x = np.asarray(values, np.float32)
    return _int_codes(x, np.asarray(scale, np.float32), np.asarray(zp, np.float32), lo, hi,
                      normalise_rounding_mode(rounding))


def _is_bias(node: ir.Node) -> bool:
    out = node.outputs[0]
    for user, index in out.uses():
        if user.op_type in ("Conv", "Gemm", "ConvTranspose") and index == 2:
            return True
        if user.op_type == "Add" and constant_array(node.inputs[0]) is not None and node.inputs[0].shape is not None \
                and len(node.inputs[0].shape) == 1:
            return True
    return False


def _int8_layers(model: ir.Model) -> tuple[list[str], list[str]]:
    int8, other = [], []
    for node in model.graph.all_nodes():
        if node.op_type not in _LAYERS or canonical_domain(node.domain) != STANDARD:
            continue
        ins = [_through_movement(v) for v in node.inputs[:2]]
        # int8 on both sides (at opset >= 21 a narrow weight may be stored in int4: TensorRT then runs the
        # layer on dequantized weights, not in int8)
        ok = len(ins) == 2 and all(p is not None and p.op_type == "DequantizeLinear" and _container(p) == np.int8
                                   for p in ins)
        (int8 if ok else other).append(node.name or node.op_type)
    return int8, other


def _container(dq: ir.Node) -> np.dtype | None:
    """The integer type a DequantizeLinear reads: its zero point's (always written by our lowering)."""
    zp = constant_array(dq.inputs[2]) if len(dq.inputs) > 2 else None
    return None if zp is None else zp.dtype


def _through_movement(value: ir.Value | None) -> ir.Node | None:
    node = value.producer() if value is not None else None
    while node is not None and node.op_type in ("Transpose", "Reshape", "Flatten") and node.inputs:
        node = node.inputs[0].producer() if node.inputs[0] is not None else None
    return node
