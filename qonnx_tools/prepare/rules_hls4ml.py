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
    Rule, any_node, fix_by_pass, input_input, is_int_quant, is_op, is_quantizer, non_constant_params, rank, scalar,
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
        return Decline(f"pad value {value}" if value is not None else "pad value not a constant scalar",
                       input_input(node, 2))
    if input_input(node, 3) is not None:
        return Decline("explicit axes input", input_input(node, 3))
    return None


def _shared_initializers(node: ir.Node, model: ir.Model) -> Decline | None:
    shared = [
        v for v in node.inputs
        if v is not None and v.is_initializer() and len(v.uses()) > 1
    ]
    return Decline("an initializer is read by other nodes too", *shared) if shared else None


def _names(node: ir.Node, model: ir.Model) -> Decline | None:
    from qonnx_tools.passes.sanitize_names import is_c_identifier

    names = [node.name] + [v.name for v in node.outputs if v is not None] + [
        v.name for v in node.inputs if v is not None and (v.is_graph_input() or v.is_initializer())
    ]
    bad = sorted({n for n in names if n and (n in RESERVED_NAMES or not is_c_identifier(n))})
    if not bad:
        return None
    reserved = [n for n in bad if n in RESERVED_NAMES]
    if not reserved:
        what = "names that are not C identifiers"
    else:
        what = "a reserved name" if len(reserved) == len(bad) else "reserved names and names that are not C identifiers"
    return Decline(what, ", ".join(repr(n) for n in bad))


RULES = [
    RESHAPE_ELEMENTS,
    Rule("supported-op", any_node, _unsupported_op, "hls4ml has no layer for this op",
         "none automatic: replace the op in the model at its source"),
    Rule("conv-shape", is_op("Conv", domain=(STANDARD, CHANNELS_LAST)), _conv_shape,
         "hls4ml supports 1-D/2-D convs with group 1 or depthwise",
         "none automatic: split the grouped convolution into per-group convolutions + Concat at the source"),
    Rule("shape-known", any_node, unknown_shapes, "every tensor needs a static shape",
         "prepare sets batch 1 and infers shapes (not with --check-only); a shape still unknown after it comes "
         "from an op with a data-dependent shape upstream: none automatic"),
    Rule("no-gemm", is_op("Gemm"), lambda n, m: Decline("Gemm node"), "hls4ml reads MatMul + Add, not Gemm",
         fix_by_pass("gemm-to-matmul")),
    Rule("channels-last", is_op("Conv", "MaxPool", "BatchNormalization"), _nchw,
         "Conv, BatchNormalization and pools must be channels-last", fix_by_pass("to-channels-last")),
    Rule("node-named", any_node, unnamed, "every node needs a name (hls4ml layer names)", fix_by_pass("name-nodes")),
    Rule("quantizer-params-constant", is_quantizer, non_constant_params,
         "quantizer parameters must be constants", fix_by_pass("remove-static-inputs,cleanup")),
    Rule("rounding-mode", is_op("IntQuant", "Quant", "Trunc", domain=QONNX), _rounding,
         "only ROUND and FLOOR rounding are supported",
         "none automatic: re-export the quantizer with ROUND or FLOOR rounding"),
    Rule("no-narrow-unsigned", is_int_quant, _narrow_unsigned, "narrow unsigned quantizers are not supported",
         "none automatic: re-export the quantizer without narrow range, or signed"),
    Rule("merge-inputs", is_op(*MERGE_OPS, domain=(STANDARD, CHANNELS_LAST)), _merge_shape,
         "hls4ml merges two tensors, Concat up to rank 3",
         "none automatic: split the merge into a chain of two-input merges at the source"),
    Rule("pad-constant-zero", is_op("Pad"), _pad, "hls4ml pads with zeros in constant mode only",
         "none automatic: replace the Pad at the source (e.g. by the following Conv's pads)"),
    Rule("unshared-initializers", any_node, _shared_initializers,
         "each initializer must have one reader (hls4ml removes it with its first reader)",
         fix_by_pass("unshare-initializers")),
    Rule("c-identifier-names", any_node, _names,
         "names must be C identifiers other than 'input' (hls4ml uses them as C++ variables)",
         fix_by_pass("sanitize-names{reserved=input}")),
]
