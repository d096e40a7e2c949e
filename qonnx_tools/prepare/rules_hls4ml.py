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

import numpy as np

from qonnx_tools._ir import ir
from qonnx_tools.constants import constant_array
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


#: readers through which hls4ml's one-bit ("xnor": 1 for +1, 0 for -1) bipolar values keep their meaning
_XNOR_READERS = {"MatMul": 0, "Conv": 0, "Reshape": 0, "Flatten": 0, "Transpose": 0, "MaxPool": 0}


def _bipolar_readers(node: ir.Node, model: ir.Model) -> Decline | None:
    if constant_array(node.inputs[0]) is not None:
        return None  # weights: hls4ml folds them into the layer that reads them
    out = node.outputs[0]
    if out.is_graph_output():
        return Decline("a bipolar graph output: hls4ml's C++ gives 0 where the model gives -1", out)
    wrong = [user for user, index in out.uses() if _XNOR_READERS.get(user.op_type) != index]
    if wrong:
        return Decline(f"{wrong[0].op_type} {wrong[0].name!r} reads hls4ml's 0/1 encoding of -1/+1 as numbers")
    return None


def _xnor_products(node: ir.Node, model: ir.Model) -> Decline | None:
    producers = [v.producer() if v is not None else None for v in node.inputs[:2]]
    if len(producers) == 2 and all(p is not None and p.op_type == "BipolarQuant" for p in producers):
        return Decline("bipolar data times bipolar weights: hls4ml counts agreeing signs (p) instead of 2p - K")
    return None


def _negative_scale_before_sign(node: ir.Node, model: ir.Model) -> Decline | None:
    uses = node.outputs[0].uses()
    if not uses or not all(u.op_type == "BipolarQuant" for u, _ in uses):
        return None
    gamma = constant_array(node.inputs[1])
    if gamma is not None and (gamma < 0).any():
        return Decline(f"{int((gamma < 0).sum())} channel(s) with a negative scale before a sign: hls4ml's "
                       "threshold compares the wrong way there")
    return None


def _constant_rescale(node: ir.Node, model: ir.Model) -> Decline | None:
    from qonnx_tools.passes._rewrite import read_only_as_weights
    from qonnx_tools.passes.dequantize_rescaled_constants import constant_quantizer

    arrays = constant_quantizer(node)  # None: not constants, or a power-of-two scale hls4ml types itself
    if arrays is None:
        return None
    scale, readers = arrays[1], node.outputs[0].uses()
    weight = read_only_as_weights(node.outputs[0])
    if scale.size > 1 and not (weight and np.all(scale == scale.reshape(-1)[0])):
        return Decline("per-channel scale that is not a power of two on constants", node.inputs[1])
    if not weight:
        return Decline(f"scale {float(scale.reshape(-1)[0]):g} (not a power of two) on constants read by "
                       f"{readers[0][0].op_type if readers else 'nothing'}, not as MatMul/Conv weights",
                       node.inputs[1])
    return None


def _shared_rescaled_activation(node: ir.Node, model: ir.Model) -> Decline | None:
    if constant_array(node.inputs[0]) is not None or len(node.inputs) < 2:
        return None
    from qonnx_tools.prepare.hls4ml_config import plain_quantizer

    scale = constant_array(node.inputs[1])
    zero_point = constant_array(node.inputs[2]) if len(node.inputs) > 2 and node.inputs[2] is not None else None
    if scale is None or zero_point is None:
        return None
    if plain_quantizer(np.asarray(scale), np.asarray(zero_point)):
        return None  # hls4ml makes it a type, without a rescaling layer: every reader gets the quantized values
    out = node.outputs[0]
    readers = len(out.uses()) + out.is_graph_output()
    if readers < 2:
        return None
    return Decline(f"read by {readers} nodes with a scale that is not one power of two (or a nonzero zero "
                   "point): hls4ml moves the rescaling into one reader, the others read integer codes")


def _implicit_attributes(node: ir.Node, model: ir.Model) -> Decline | None:
    from qonnx_tools.passes.explicit_default_attributes import missing_defaults

    missing = missing_defaults(node)
    if isinstance(missing, Decline) or not missing:
        return missing or None
    if "roi" in missing:
        return Decline("an omitted or empty roi input")
    return Decline(f"no {', '.join(missing)} attribute (ONNX default)")


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
    Rule("bipolar-readers", is_op("BipolarQuant", domain=QONNX), _bipolar_readers,
         "hls4ml keeps bipolar activations as 1/0; only MatMul/Conv data inputs (and data movement) read them as -1/+1",
         "none automatic: read the bipolar tensor with a MatMul/Conv, or quantize it with a 2-bit narrow Quant at "
         "the source"),
    Rule("no-xnor-products", is_op("MatMul", "Conv", domain=(STANDARD, CHANNELS_LAST)), _xnor_products,
         "bipolar weights must not meet bipolar data (hls4ml's xnor product is a popcount)",
         fix_by_pass("bipolar-weights-to-int2")),
    Rule("positive-scale-before-sign", is_op("BatchNormalization", domain=(STANDARD, CHANNELS_LAST)),
         _negative_scale_before_sign, "a BatchNormalization before a sign needs positive scales in hls4ml",
         fix_by_pass("positive-batchnorm-before-sign")),
    Rule("constant-rescale", is_op("Quant", "IntQuant", domain=QONNX), _constant_rescale,
         "hls4ml 1.3 stops with 'IndexError: list index out of range' on a quantized constant it has to rescale "
         "(scale not a power of two) unless it is a MatMul/Conv weight with one scale",
         "none automatic: quantize biases with a power-of-two scale (or none), weights per tensor, at the source"),
    Rule("shared-rescaled-activation", is_op("Quant", "IntQuant", domain=QONNX), _shared_rescaled_activation,
         "an activation quantizer whose scale is not a power of two must have one reader (hls4ml 1.3 rescales "
         "only one of them: residual_shared_quant's skip connections come out wrong)",
         "none automatic (copying the quantizer does not help: hls4ml then folds the first copy into the layer "
         "before it); use power-of-two activation scales at the source"),
    Rule("explicit-attributes", lambda n: (canonical_domain(n.domain) == QONNX and n.op_type in ("Quant", "IntQuant"))
         or (canonical_domain(n.domain) in (STANDARD, CHANNELS_LAST)
             and n.op_type in ("Conv", "MaxPool", "AveragePool", "Resize")),  # ops hls4ml has a layer for
         _implicit_attributes,
         "hls4ml reads these attributes without ONNX's defaults (a Conv without dilations stops it with "
         "KeyError: 'kernel_shape')", fix_by_pass("explicit-default-attributes")),
    Rule("c-identifier-names", any_node, _names,
         "names must be C identifiers other than 'input' (hls4ml uses them as C++ variables)",
         fix_by_pass("sanitize-names{reserved=input}")),
]
