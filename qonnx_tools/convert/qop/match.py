"""Phase 2 of ``to_qop``: find one layer's quantizers, weight, bias and epilogue, without changing the graph.

``match(conv, node)`` returns a ``Layer`` for a Conv / MatMul / Gemm whose input, weight
and output are quantized (the pattern in ``qonnx_tools.convert.qop``'s docstring), or
raises ``Decline`` saying which part is missing or cannot be expressed in QOp.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from qonnx_tools._ir import ir
from qonnx_tools.constants import constant_array
from qonnx_tools.convert import FOLD_BATCHNORM_FLAG
from qonnx_tools.convert.qop.state import REQUIRES_ALL, Conversion
from qonnx_tools.decline import Decline
from qonnx_tools.errors import QonnxToolsError
from qonnx_tools.executor.kernels.quantize_linear import int_range
from qonnx_tools.passes.move_into_integer_domain import (
    INT8,
    NARROW,
    UINT8,
    QuantParams,
    describe,
    int_dtype,
    is_op,
    per_tensor,
    quant_params,
    rank_of,
    scalar,
)

#: Ops evaluated at conversion time on the weight path (all inputs constant).
_FOLDABLE = ("Clip", "QuantizeLinear", "Cast", "Identity", "Transpose", "Reshape", "Squeeze", "Unsqueeze")


@dataclass
class Layer:
    """Everything the rewrite of one layer needs (found without changing the graph)."""

    node: ir.Node
    kind: str  # "conv" | "dense"
    x_q: ir.Value
    xq: QuantParams
    q: ir.Node
    yq: QuantParams
    w: np.ndarray | None = None  # int64; conv [M, C/g, k...], dense [K, N]
    w_scale: np.ndarray | None = None  # float64, () or [C]
    w_zero: np.ndarray | None = None  # int64, () or [C]
    b_q: ir.Value | None = None  # dynamic second MatMul operand (activation x activation)
    bq: QuantParams | None = None
    bias_int: np.ndarray | None = None  # int64 [C] at scale bias_scale
    bias_scale: np.ndarray | None = None  # float32 [C] or ()
    bias_float: np.ndarray | None = None  # float64 [C] (float bias, already dequantized)
    bias_desc: str = ""
    alpha: float = 1.0
    beta: float = 1.0
    trans_a: bool = False
    bn: tuple[np.ndarray, np.ndarray] | None = None  # per-channel (factor, shift), float64
    bn_name: str = ""
    relu: bool = False
    epilogue: bool = False  # integer op + float epilogue, keeping the output QuantizeLinear
    float_output: bool = False  # no output quantizer: the epilogue's float result replaces the layer's output
    depthwise_input_scales: bool = False  # per-channel input scales folded into the weight scales
    chain: list[ir.Node] = field(default_factory=list)  # nodes between the layer and q
    sources: list[ir.Value] = field(default_factory=list)  # inputs that may become dead

    @property
    def channels(self) -> int:
        """Number of output channels (conv) or output features (dense)."""
        return int(self.w.shape[0] if self.kind == "conv" else self.w.shape[-1])

    @property
    def has_bias(self) -> bool:
        return self.bias_int is not None or self.bias_float is not None or self.bn is not None


def fold_constant(model: ir.Model, value: ir.Value | None, depth: int = 0) -> np.ndarray | None:
    """Value of ``value`` when it is a constant or computed from constants by simple ops."""
    if value is None:
        return None
    arr = constant_array(value)
    if arr is not None:
        return arr
    node = value.producer()
    if depth > 16 or not is_op(node, *_FOLDABLE):
        return None
    args = []
    for v in node.inputs:
        if v is None:
            args.append(None)
            continue
        a = fold_constant(model, v, depth + 1)
        if a is None:
            return None
        args.append(a)
    from qonnx_tools.executor.engine import bind_kernel

    try:
        kernel, ctx = bind_kernel(node, model)
        out = kernel(ctx, *args)
    except QonnxToolsError:
        return None
    if not isinstance(out, np.ndarray):
        out = out[list(node.outputs).index(value)]
    return np.asarray(out)


def match(conv: Conversion, node: ir.Node) -> Layer:
    """The layer around Conv / MatMul / Gemm ``node``; Decline when QOp cannot express it."""
    op = node.op_type
    kind = "conv" if op == "Conv" else "dense"
    x = node.inputs[0]
    # input quantizer
    dq = x.producer() if x is not None else None
    if not is_op(dq, "DequantizeLinear"):
        raise Decline(f"no input quantizer ({REQUIRES_ALL}): the input comes from {_kind(dq)}", x, *_node(dq))
    x_q = dq.inputs[0]
    if constant_array(x_q) is not None:
        raise Decline(f"no input quantizer ({REQUIRES_ALL}): the input is a constant", x)
    xq = quant_params(dq, int_dtype(x_q), rank_of(x))
    _check_activation_container(xq.dtype, "input")
    trans_a = op == "Gemm" and bool(node.attributes.get_int("transA", 0))
    layer = Layer(node=node, kind=kind, x_q=x_q, xq=xq, q=node, yq=xq, trans_a=trans_a)
    layer.sources.append(x)
    # output quantizer (walk: [Add bias] [BatchNormalization] [Relu] QuantizeLinear)
    try:
        _match_output(conv, layer)
    except Decline as why:
        if not (conv.float_outputs and why.reason.startswith("no output quantizer")):
            raise
        # Integer op, then the layer's own float arithmetic: what follows (bias Add, BatchNormalization,
        # a graph output) stays as it was, in float.
        layer.chain, layer.relu, layer.bn, layer.bn_name = [], False, None, ""
        layer.q, layer.yq = node, xq
        layer.epilogue = layer.float_output = True
    # weight and bias
    if op == "Conv":
        _match_conv_weight(conv, layer)
        if len(node.inputs) > 2 and node.inputs[2] is not None:
            _match_bias(conv, layer, node.inputs[2])
    else:
        _match_dense_weight(conv, layer)
        if op == "Gemm":
            layer.alpha = float(node.attributes.get_float("alpha", 1.0))
            layer.beta = float(node.attributes.get_float("beta", 1.0))
            if len(node.inputs) > 2 and node.inputs[2] is not None:
                if layer.beta != 0.0:
                    _match_bias(conv, layer, node.inputs[2])
                else:
                    layer.sources.append(node.inputs[2])
        for extra in layer.chain:
            if extra.op_type == "Add":
                if layer.has_bias:
                    raise Decline("two biases (Gemm C and an Add) are not supported")
                prev = node.outputs[0]
                other = extra.inputs[1] if extra.inputs[0] is prev else extra.inputs[0]
                _match_bias(conv, layer, other)
    if layer.b_q is not None and (layer.has_bias or layer.epilogue):
        raise Decline("a product of two activations with a bias, BatchNormalization or per-channel output "
                      "quantization is not supported")
    if not xq.per_tensor:
        _fold_depthwise_input_scales(layer)
    return layer


def _fold_depthwise_input_scales(layer: Layer) -> None:
    """Per-channel input scales of a depthwise Conv factor out of each channel's sum: fold them into w_scale."""
    xq, node = layer.xq, layer.node
    groups = node.attributes.get_int("group", 1)
    if not (
        layer.kind == "conv" and xq.axis == 1 and layer.w is not None and layer.w.shape[1] == 1
        and groups == layer.w.shape[0] == xq.scale.size and per_tensor(xq.zero)
    ):
        raise Decline(
            "per-channel input quantization: QLinearConv/QLinearMatMul need a per-tensor x_scale and, except "
            "in a depthwise Conv, the channel scales cannot be taken out of the accumulation"
        )
    layer.w_scale = np.broadcast_to(layer.w_scale, xq.scale.shape) * xq.scale.astype(np.float64)
    layer.xq = QuantParams(np.array(1.0, np.float32), scalar(xq.zero), xq.dtype, None)
    layer.depthwise_input_scales = True


def _check_activation_container(dtype: np.dtype, what: str) -> None:
    if dtype in (INT8, UINT8) or dtype in NARROW:
        return
    raise Decline(
        f"{what} container {dtype} is not supported by QLinearConv/QLinearMatMul (int8/uint8, or int4/int2 widened)"
    )


def _match_output(conv: Conversion, layer: Layer) -> None:
    node = layer.node
    value = node.outputs[0]
    seen: list[str] = []
    while True:
        if value.is_graph_output():
            after = f" after {' -> '.join(seen)}" if seen else ""
            raise Decline(f"no output quantizer ({REQUIRES_ALL}): the output is a graph output{after}", value)
        uses = value.uses()
        if len(uses) != 1:
            users = ", ".join(sorted({u.op_type for u, _ in uses})) or "nothing"
            raise Decline(
                f"no output quantizer ({REQUIRES_ALL}): the output feeds {users}"
                + (f" ({len(uses)} consumers)" if len(uses) > 1 else ""),
                value, *(u for u, _ in uses),
            )
        user, index = uses[0]
        if is_op(user, "QuantizeLinear") and index == 0:
            layer.q = user
            layer.yq = quant_params(user, None, rank_of(value))
            break
        if is_op(user, "Relu") and "Relu" not in seen:
            seen.append("Relu")
            layer.relu = True
        elif is_op(user, "BatchNormalization") and index == 0 and conv.fold_batchnorm and seen in ([], ["Add"]):
            _match_batchnorm(layer, user)
            seen.append("BatchNormalization")
        elif is_op(user, "Add") and layer.kind == "dense" and not seen and _constant_operand(conv, user, value):
            seen.append("Add")
        else:
            hint = ""
            if is_op(user, "BatchNormalization") and not conv.fold_batchnorm:
                hint = f" ({FOLD_BATCHNORM_FLAG} folds it)"
            after = f" after {' -> '.join(seen)}" if seen else ""
            raise Decline(
                f"no output quantizer ({REQUIRES_ALL}): the output feeds {user.op_type}{after}{hint}", value, user
            )
        layer.chain.append(user)
        if len(user.outputs) != 1 and any(o.uses() or o.is_graph_output() for o in user.outputs[1:]):
            raise Decline(f"{user.op_type} after the layer has more than one used output", user)
        value = user.outputs[0]
    _check_activation_container(layer.yq.dtype, "output")
    if not layer.yq.per_tensor:
        rank = rank_of(value) if layer.kind == "dense" else None
        channel = 1 if layer.kind == "conv" or node.op_type == "Gemm" or rank == 2 else None
        if rank is not None and layer.kind == "dense":
            channel = rank - 1
        if layer.yq.axis != channel:
            raise Decline(
                f"output quantized along axis {layer.yq.axis}; QLinearConv/QLinearMatMul "
                "need a per-tensor y_scale and a float epilogue needs the channel axis", layer.q
            )
        if layer.yq.dtype in NARROW:
            raise Decline("per-channel output quantization into a sub-8-bit container is not supported")
        layer.epilogue = True


def _constant_operand(conv: Conversion, add: ir.Node, value: ir.Value) -> bool:
    """Whether ``add`` adds a constant (float, or DequantizeLinear of integers) to ``value``."""
    if len(add.inputs) != 2 or add.inputs[0] is add.inputs[1]:
        return False
    other = add.inputs[1] if add.inputs[0] is value else add.inputs[0]
    dq = other.producer() if other is not None else None
    if is_op(dq, "DequantizeLinear"):
        return fold_constant(conv.model, dq.inputs[0]) is not None
    return fold_constant(conv.model, other) is not None


def _match_batchnorm(layer: Layer, bn: ir.Node) -> None:
    if layer.kind == "dense" and layer.node.op_type == "MatMul":
        if rank_of(layer.node.inputs[0]) != 2:
            raise Decline("BatchNormalization after a MatMul whose input is not known to be 2-D "
                          "(channel axis 1 != features)", bn)
    if bn.attributes.get_int("training_mode", 0):
        raise Decline("BatchNormalization after the layer is in training mode", bn)
    params = [constant_array(v) if v is not None else None for v in bn.inputs[1:5]]
    if len(params) != 4 or any(p is None for p in params):
        raise Decline("BatchNormalization after the layer has parameters computed at run time", bn)
    scale, shift, mean, var = (p.astype(np.float64).reshape(-1) for p in params)
    eps = float(bn.attributes.get_float("epsilon", 1e-5))
    factor = scale / np.sqrt(var + eps)
    if np.any(factor == 0) or not np.all(np.isfinite(factor)):
        raise Decline("BatchNormalization after the layer has a zero or non-finite factor; it cannot go into a "
                      "weight scale", bn)
    layer.bn = (factor, shift - mean * factor)
    layer.bn_name = bn.name or ""
    layer.sources.extend(v for v in bn.inputs[1:5] if v is not None)


def _weight_dq(value: ir.Value) -> tuple[ir.Node, list[ir.Node]]:
    """The weight's DequantizeLinear and the Transposes/Identities between it and the layer."""
    after: list[ir.Node] = []
    node = value.producer()
    while is_op(node, "Transpose", "Identity") and len(after) < 8:
        after.append(node)
        node = node.inputs[0].producer() if node.inputs[0] is not None else None
    if not is_op(node, "DequantizeLinear"):
        raise Decline(f"no weight quantizer ({REQUIRES_ALL}): the weight comes from {_kind(node)}", value,
                      *_node(node))
    return node, after[::-1]


def _load_weight(conv: Conversion, layer: Layer, value: ir.Value) -> tuple[np.ndarray, QuantParams] | None:
    """(integers, parameters with axis) of a constant quantized weight, after the Transposes; None if dynamic."""
    dq, after = _weight_dq(value)
    w = fold_constant(conv.model, dq.inputs[0])
    if w is None:
        return None
    if int_range(w.dtype) is None:
        raise Decline("the weight's DequantizeLinear reads a non-integer tensor", dq)
    params = quant_params(dq, np.dtype(w.dtype), w.ndim)
    w = w.astype(np.int64)
    axis = params.axis
    for node in after:
        if node.op_type == "Transpose":
            perm = node.attributes.get_ints("perm") or list(range(w.ndim))[::-1]
            w = w.transpose(perm)
            if axis is not None:
                axis = list(perm).index(axis)
    params.axis = axis
    layer.sources.append(value)
    return w, params


def _match_conv_weight(conv: Conversion, layer: Layer) -> None:
    loaded = _load_weight(conv, layer, layer.node.inputs[1])
    if loaded is None:
        raise Decline(f"no weight quantizer ({REQUIRES_ALL}): the Conv weight is not a constant")
    w, params = loaded
    if params.axis not in (None, 0):
        raise Decline(f"weight quantized along axis {params.axis}; QLinearConv takes per-output-channel (axis 0) only")
    layer.w, layer.w_scale, layer.w_zero = w, params.scale.astype(np.float64), params.zero


def _match_dense_weight(conv: Conversion, layer: Layer) -> None:
    node = layer.node
    b = node.inputs[1]
    trans_b = node.op_type == "Gemm" and bool(node.attributes.get_int("transB", 0))
    loaded = _load_weight(conv, layer, b)
    if loaded is None:
        if node.op_type != "MatMul":
            raise Decline(f"no weight quantizer ({REQUIRES_ALL}): the Gemm weight is not a constant")
        dq, after = _weight_dq(b)
        if after:
            raise Decline("a Transpose between an activation's DequantizeLinear and MatMul is not supported")
        bq = quant_params(dq, int_dtype(dq.inputs[0]), b.shape.rank() if b.shape else None)
        if not bq.per_tensor or not layer.xq.per_tensor:
            raise Decline("a product of two activations with per-channel quantization is not supported")
        _check_activation_container(bq.dtype, "second input")
        if (layer.xq.dtype == INT8 and bq.dtype == UINT8) or bq.dtype in NARROW:
            raise Decline(f"QLinearMatMul of {layer.xq.dtype} x {bq.dtype} activations has no onnxruntime kernel")
        layer.b_q, layer.bq = dq.inputs[0], bq
        layer.sources.append(b)
        return
    w, params = loaded
    if trans_b:
        if w.ndim != 2:
            raise Decline("Gemm weight is not 2-D")
        w = w.T
        if params.axis is not None:
            params.axis = 1 - params.axis
    if params.axis is not None and (w.ndim != 2 or params.axis != w.ndim - 1):
        raise Decline(
            f"weight quantized along axis {params.axis} of a {w.ndim}-D weight; QLinearMatMul takes per-column "
            "(output feature) scales only"
        )
    layer.w, layer.w_scale, layer.w_zero = w, params.scale.astype(np.float64), params.zero


def _match_bias(conv: Conversion, layer: Layer, value: ir.Value) -> None:
    layer.sources.append(value)
    node = value.producer()
    if is_op(node, "DequantizeLinear"):
        b = fold_constant(conv.model, node.inputs[0])
        if b is not None and int_range(b.dtype) is not None:
            params = quant_params(node, np.dtype(b.dtype), b.ndim)
            if params.axis is not None and b.ndim != 1:
                raise Decline("bias quantized per channel on a bias that is not 1-D")
            layer.bias_int = _channel_vector(layer, b.astype(np.int64) - params.zero, "bias")
            layer.bias_scale = _channel_vector(layer, params.scale.astype(np.float32), "bias scale")
            layer.bias_desc = f"bias of {describe(node)} at scale {_fmt_scale(params.scale)}"
            return
    b = fold_constant(conv.model, value)
    if b is None or np.dtype(b.dtype).kind != "f":
        raise Decline(f"the bias is not a constant (comes from {_kind(node)})", value, *_node(node))
    layer.bias_float = _channel_vector(layer, b.astype(np.float64), "bias")
    layer.bias_desc = "float bias"


def _kind(node: ir.Node | None) -> str:
    """What a value comes from, without names: ``a graph input`` or the producer's op type."""
    return "a graph input" if node is None else node.op_type


def _node(node: ir.Node | None) -> tuple:
    return () if node is None else (node,)


def _fmt_scale(scale: np.ndarray) -> str:
    flat = np.asarray(scale).reshape(-1)
    return f"{float(flat[0]):.6g}" if flat.size == 1 else f"[{flat.size} channels]"


def _channel_vector(layer: Layer, b: np.ndarray, what: str) -> np.ndarray:
    c = layer.channels
    if b.size == 1:
        return np.full(c, b.reshape(-1)[0], dtype=b.dtype)
    if b.reshape(-1).size != c:
        raise Decline(f"{what} is not one value per output channel", f"shape {tuple(b.shape)}, {c} channels")
    if layer.kind == "dense" and b.ndim > 1 and b.shape[-1] != c:
        raise Decline(f"{what} does not broadcast along the output features", f"shape {tuple(b.shape)}")
    if layer.kind == "conv" and b.ndim > 1:
        raise Decline(f"{what} is not 1-D", f"shape {tuple(b.shape)}")
    return b.reshape(-1).copy()
