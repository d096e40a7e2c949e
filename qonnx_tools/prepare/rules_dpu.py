"""Xilinx/AMD DPU (Vitis AI) readiness rules, checked on the QCDQ form ``prepare --target dpu`` writes.

What the DPU computes, from Vitis AI's documentation (UG1414, "Currently Supported Operators";
its quantizers' scheme): 8-bit signed integers in [-128, 127] for weights, biases' operands and
activations, one scale per tensor, every scale a power of two (the DPU shifts instead of
multiplying), zero point 0 (symmetric); int32 biases at ``x_scale * w_scale`` (a power of two
too when both are). Conv kernels of 1..16 per side and strides of 1..4 run on every DPU of
UG1414 3.0's table (some take strides up to 8); operators outside the list run on the CPU,
which defeats a DPU deployment, so they are reported.

A rule only reads the graph; what can be fixed exactly is fixed before the check by the
pipeline (``prepare``): uint8 activation codes that stay within [0, 127] become int8
(``uint8-codes-to-int8``, exact), which is the only container change the DPU allows. A scale
that is not a power of two cannot be made one without changing the model's numbers: the rule
says so per node, and the fix is to re-quantize at the source (Brevitas' ``*PowerOfTwo*``
quantizers, QKeras' ``alpha="auto_po2"``).
"""

from __future__ import annotations

import numpy as np

from qonnx_tools._ir import ir
from qonnx_tools.constants import constant_array
from qonnx_tools.decline import Decline
from qonnx_tools.prepare.rules import Rule, any_node, is_op, nonzero_zeropoint
from qonnx_tools.prepare.rules_ort import ORT_RULES

#: ONNX ops the DPU runs (with Q/DQ around them); others fall back to the CPU
DPU_OPS = frozenset({
    "Conv", "ConvTranspose", "Gemm", "MatMul", "Add", "Mul", "Relu", "LeakyRelu", "Clip", "MaxPool", "AveragePool",
    "GlobalAveragePool", "GlobalMaxPool", "Concat", "Resize", "Upsample", "Flatten", "Reshape", "Transpose",
    "Squeeze", "Unsqueeze", "Pad", "Identity", "BatchNormalization", "QuantizeLinear", "DequantizeLinear",
    "HardSigmoid", "HardSwish",
})
_MAX_KERNEL = 16
_MAX_STRIDE = 4


def _is_bias(node: ir.Node) -> bool:
    data = node.inputs[0] if node.inputs else None
    return (node.op_type == "DequantizeLinear" and data is not None and constant_array(data) is not None
            and constant_array(data).dtype == np.int32)


def _container(node: ir.Node, model: ir.Model) -> Decline | None:
    if _is_bias(node):
        return None
    zp = node.inputs[2] if len(node.inputs) > 2 else None
    array = constant_array(zp) if zp is not None else None
    dtype = array.dtype if array is not None else (np.dtype(np.uint8) if zp is None else None)
    if dtype is None:
        return Decline("zero point is not a constant", zp)
    if dtype != np.int8:
        return Decline(f"{dtype.name} codes (the DPU computes in int8)", zp)
    return None


def _per_tensor(node: ir.Node, model: ir.Model) -> Decline | None:
    scale = constant_array(node.inputs[1]) if len(node.inputs) > 1 else None
    if scale is None:
        return Decline("scale is not a constant", node.inputs[1] if len(node.inputs) > 1 else node)
    if scale.size != 1:
        return Decline("scales per channel", f"{scale.size} scales in {node.inputs[1].name!r}")
    return None


def _power_of_two(node: ir.Node, model: ir.Model) -> Decline | None:
    scale = constant_array(node.inputs[1]) if len(node.inputs) > 1 else None
    if scale is None:
        return None  # reported by dpu-per-tensor
    values = np.asarray(scale, np.float64).reshape(-1)
    mantissa, _ = np.frexp(values)
    bad = values[(values <= 0) | (mantissa != 0.5)]
    if bad.size:
        return Decline("scale is not a power of two", f"{node.inputs[1].name!r} = {bad[0]:.8g}")
    return None


def _supported(node: ir.Node, model: ir.Model) -> Decline | None:
    if node.domain not in ("", "ai.onnx") or node.op_type not in DPU_OPS:
        return Decline(f"{node.op_type} is not a DPU operator (it would run on the CPU)")
    return None


def _conv_shape(node: ir.Node, model: ir.Model) -> Decline | None:
    kernel = node.attributes.get_ints("kernel_shape")
    if kernel is None and len(node.inputs) > 1 and node.inputs[1] is not None and node.inputs[1].shape is not None:
        kernel = [d for d in node.inputs[1].shape[2:]]
    strides = node.attributes.get_ints("strides") or []
    if kernel and any(not isinstance(k, int) or not 1 <= k <= _MAX_KERNEL for k in kernel):
        return Decline(f"kernel beyond 1..{_MAX_KERNEL} per side", f"kernel {list(kernel)}")
    if any(not 1 <= s <= _MAX_STRIDE for s in strides):
        return Decline(f"strides beyond 1..{_MAX_STRIDE}", f"strides {list(strides)}")
    return None


_REQUANTIZE = "none automatic: re-quantize at the source with {} (or --target ort)"

DPU_RULES = ORT_RULES + [
    Rule("dpu-operator", any_node, _supported, "the DPU runs only its operator list (UG1414)",
         "none automatic: replace the op at the source, or accept a CPU partition"),
    Rule("dpu-int8", is_op("QuantizeLinear", "DequantizeLinear"), _container,
         "the DPU computes in signed 8-bit integers", _REQUANTIZE.format("signed 8-bit quantizers")),
    Rule("dpu-symmetric", is_op("QuantizeLinear", "DequantizeLinear"), nonzero_zeropoint,
         "the DPU quantizes symmetrically (zero point 0)", _REQUANTIZE.format("symmetric quantizers")),
    Rule("dpu-per-tensor", is_op("QuantizeLinear", "DequantizeLinear"), _per_tensor,
         "the DPU takes one scale per tensor", _REQUANTIZE.format("per-tensor scales")),
    Rule("dpu-power-of-two", is_op("QuantizeLinear", "DequantizeLinear"), _power_of_two,
         "the DPU's scales are powers of two",
         _REQUANTIZE.format("power-of-two scales (Brevitas *PowerOfTwo*, QKeras alpha='auto_po2')")),
    Rule("dpu-conv-shape", is_op("Conv", "ConvTranspose"), _conv_shape,
         f"the DPU's Conv takes kernels of 1..{_MAX_KERNEL} and strides of 1..{_MAX_STRIDE} per side",
         "none automatic: change the layer at the source"),
]
