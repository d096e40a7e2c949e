"""hls4ml readiness rules (the model hls4ml's QONNX front end reads).

Checked against hls4ml 1.3's ONNX converter (tests/consumers/test_hls4ml_consumer.py
runs it when a venv with hls4ml is available): the op types it has a handler for,
channels-last Conv/BatchNormalization/pools, 1-D/2-D convolutions with group 1 or
depthwise, merges of two inputs, Concat up to rank 3 without the batch, Pad in
constant mode with value 0, constant quantizer parameters, no initializer read by
two nodes (hls4ml turns each into a Constant layer removed with its first reader),
and names that are C identifiers other than ``input`` (hls4ml uses them as C++
variable names, rewrites some of them inconsistently, and reserves ``input``).
"""

from __future__ import annotations

from qonnx_tools._ir import ir
from qonnx_tools.decline import Decline
from qonnx_tools.domains import CHANNELS_LAST, QONNX, STANDARD, canonical_domain
from qonnx_tools.prepare.rules import (
    RESHAPE_ELEMENTS,
    Rule, any_node, input_input, is_int_quant, is_op, is_quantizer, non_constant_params, rank, scalar,
    unknown_shapes, unnamed,
)


def _nchw(node: ir.Node, model: ir.Model) -> Decline | None:
    r = rank(node.inputs[0]) if node.inputs else None
    if r is None or r < 3:
        return None
    return Decline(f"standard (NCHW) {node.op_type} on a rank-{r} tensor")


def _rounding(node: ir.Node, model: ir.Model) -> Decline | None:
    mode = node.attributes.get_string("rounding_mode", "ROUND").upper()
    return None if mode in ("ROUND", "FLOOR") else Decline(f"rounding_mode={mode}")


def _narrow_unsigned(node: ir.Node, model: ir.Model) -> Decline | None:
    if not node.attributes.get_int("signed", 1) and node.attributes.get_int("narrow", 0):
        return Decline("signed=0 with narrow=1")
    return None


#: Standard op types hls4ml's ONNX front end has a handler for (domain ignored for channels-last ops).
SUPPORTED_OPS = frozenset({
    "Conv", "MatMul", "BatchNormalization",
    "Relu", "Tanh", "Sigmoid", "LeakyRelu", "ThresholdedRelu", "Elu", "Selu", "PRelu", "Softmax", "Softsign",
    "Softplus",
    "Add", "Sub", "Mul", "Div", "Max", "Min", "Sum", "Concat",
    "AveragePool", "MaxPool", "GlobalMaxPool", "GlobalAveragePool",
    "Transpose", "Reshape", "Flatten", "Resize", "Pad", "Constant",
})
SUPPORTED_QONNX_OPS = frozenset({"Quant", "IntQuant", "BipolarQuant"})
RESERVED_NAMES = frozenset({"input"})
MERGE_OPS = ("Add", "Sub", "Mul", "Div", "Max", "Min", "Sum", "Concat")


def _unsupported_op(node: ir.Node, model: ir.Model) -> Decline | None:
    domain = canonical_domain(node.domain)
    if domain == QONNX:
        return None if node.op_type in SUPPORTED_QONNX_OPS else Decline(f"{node.op_type} (QONNX) has no hls4ml handler")
    if domain in (STANDARD, CHANNELS_LAST) and node.op_type in SUPPORTED_OPS:
        return None
    if domain == STANDARD and node.op_type == "Gemm":
        return None  # reported by no-gemm, which has a fix
    return Decline(f"{node.op_type} ({domain or 'ai.onnx'}) has no hls4ml handler")


def _conv_shape(node: ir.Node, model: ir.Model) -> Decline | None:
    r = rank(node.inputs[0]) if node.inputs else None
    if r is not None and r not in (3, 4):
        return Decline(f"{r - 2}-D convolution")
    group = node.attributes.get_int("group", 1)
    shape = node.inputs[0].shape if node.inputs and node.inputs[0] is not None else None
    if group == 1 or shape is None:
        return None
    channels = shape[-1] if canonical_domain(node.domain) == CHANNELS_LAST else shape[1]
    if isinstance(channels, int) and group != channels:
        return Decline(f"group={group} with {channels} input channels (only group 1 or depthwise)")
    return None


def _merge_shape(node: ir.Node, model: ir.Model) -> Decline | None:
    if len(node.inputs) > 2:
        return Decline(f"{len(node.inputs)} inputs (at most 2)")
    r = rank(node.inputs[0]) if node.op_type == "Concat" and node.inputs else None
    if r is not None and r - 1 > 3:
        return Decline(f"Concat of rank-{r} tensors (at most rank 3 without the batch)")
    return None


def _pad(node: ir.Node, model: ir.Model) -> Decline | None:
    mode = node.attributes.get_string("mode", "constant")
    if mode != "constant":
        return Decline(f"mode={mode}")
    value = scalar(input_input(node, 2))
    if input_input(node, 2) is not None and value != 0:
        return Decline(f"pad value {value}", input_input(node, 2))
    if input_input(node, 3) is not None:
        return Decline("explicit axes input", input_input(node, 3))
    return None


def _shared_initializers(node: ir.Node, model: ir.Model) -> Decline | None:
    shared = [
        v.name for v in node.inputs
        if v is not None and v.is_initializer() and len(v.uses()) > 1
    ]
    return Decline("read by other nodes too: " + ", ".join(repr(n) for n in shared)) if shared else None


def _names(node: ir.Node, model: ir.Model) -> Decline | None:
    from qonnx_tools.passes.sanitize_names import is_c_identifier

    names = [node.name] + [v.name for v in node.outputs if v is not None] + [
        v.name for v in node.inputs if v is not None and (v.is_graph_input() or v.is_initializer())
    ]
    bad = sorted({n for n in names if n and (n in RESERVED_NAMES or not is_c_identifier(n))})
    return Decline(", ".join(repr(n) for n in bad)) if bad else None


RULES = [
    RESHAPE_ELEMENTS,
    Rule("supported-op", any_node, _unsupported_op, "hls4ml has no layer for this op",
         "replace the op, or convert it first (e.g. Gemm: gemm-to-matmul)"),
    Rule("conv-shape", is_op("Conv", domain=(STANDARD, CHANNELS_LAST)), _conv_shape, "hls4ml supports 1-D/2-D convs with group 1 or depthwise",
         "split the grouped convolution into per-group convolutions + Concat"),
    Rule("shape-known", any_node, unknown_shapes, "every tensor needs a static shape",
         "prepare (without --check-only) sets batch 1 and infers shapes itself; a shape still unknown after "
         "it comes from an op upstream with a data-dependent or unknown shape: replace that op"),
    Rule("no-gemm", is_op("Gemm"), lambda n, m: Decline("Gemm node"), "hls4ml reads MatMul + Add, not Gemm",
         "run gemm-to-matmul"),
    Rule("channels-last", is_op("Conv", "MaxPool", "BatchNormalization"), _nchw,
         "Conv, BatchNormalization and pools must be channels-last", "run to-channels-last"),
    Rule("node-named", any_node, unnamed, "every node needs a name (hls4ml layer names)", "run name-nodes"),
    Rule("quantizer-params-constant", is_quantizer, non_constant_params,
         "quantizer parameters must be constants", "run remove-static-inputs and cleanup (fold-constants)"),
    Rule("rounding-mode", is_op("IntQuant", "Quant", "Trunc", domain=QONNX), _rounding,
         "only ROUND and FLOOR rounding are supported", "re-export the quantizer with ROUND or FLOOR rounding"),
    Rule("no-narrow-unsigned", is_int_quant, _narrow_unsigned, "narrow unsigned quantizers are not supported",
         "re-export with narrow_range=False (or a signed quantizer)"),
    Rule("merge-inputs", is_op(*MERGE_OPS, domain=(STANDARD, CHANNELS_LAST)), _merge_shape,
         "hls4ml merges two tensors, Concat up to rank 3", "split the merge into a chain of two-input merges"),
    Rule("pad-constant-zero", is_op("Pad"), _pad, "hls4ml pads with zeros in constant mode only",
         "replace the Pad (e.g. fold it into the following Conv's pads)"),
    Rule("unshared-initializers", any_node, _shared_initializers,
         "each initializer must have one reader (hls4ml removes it with its first reader)", "run unshare-initializers"),
    Rule("c-identifier-names", any_node, _names,
         "names must be C identifiers other than 'input' (hls4ml uses them as C++ variables)",
         "run sanitize-names"),
]
