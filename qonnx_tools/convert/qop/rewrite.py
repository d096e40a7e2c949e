"""Phase 4 of ``to_qop``: write one matched layer as integer operators and remove what it replaces.

``rewrite(conv, layer)`` writes QLinearConv / QLinearMatMul (a MatMul/Gemm with bias as
Reshape -> 1-D QLinearConv -> Reshape), or, for per-channel output scales,
ConvInteger / MatMulInteger with a float epilogue into the original QuantizeLinear.
Around it: Casts for 4-/2-bit containers, an integer Clip for a Relu or a narrow
output, and a DequantizeLinear -> QuantizeLinear relabelling when onnxruntime has no
kernel from the input's container to the output's.
"""

from __future__ import annotations

import numpy as np

from qonnx_tools._ir import ir
from qonnx_tools.constants import constant_array
from qonnx_tools.convert.qop.match import Layer
from qonnx_tools.convert import OPSET_FLAG
from qonnx_tools.convert.qop.state import Conversion
from qonnx_tools.convert.qop.weights import INEXACT_BIAS, WeightPlan, plan_weights
from qonnx_tools.decline import Decline
from qonnx_tools.executor.kernels.quantize_linear import int_range
from qonnx_tools.passes._rewrite import unique_name
from qonnx_tools.passes.move_into_integer_domain import NARROW, UINT8, describe, is_op, per_tensor, rank_of, scalar


def rewrite(conv: Conversion, layer: Layer) -> None:
    """Replace ``layer`` by its QOp form (Decline, with the graph unchanged, when it cannot be written)."""
    if layer.epilogue:
        _rewrite_epilogue(conv, layer)
        return
    edit = conv.edit
    node, q = layer.node, layer.q
    ydt = layer.yq.dtype
    x_dt = NARROW.get(layer.xq.dtype, layer.xq.dtype)
    y_dt = NARROW.get(ydt, ydt)
    y_zp = int(layer.yq.zero.reshape(()))
    # onnxruntime's QLinear kernels write the input's container: a uint8 <-> int8 output is computed there
    # with the zero point moved by 128 (a bijection) and relabelled by DequantizeLinear -> the original Q.
    relabel = x_dt != y_dt
    shift = (128 if x_dt == UINT8 else -128) if relabel else 0
    out_dt = x_dt
    clip_lo = clip_hi = None
    if layer.relu and not _relu_is_noop(q, ydt, y_zp):
        clip_lo = y_zp + shift
    if ydt in NARROW:
        lo, hi = int_range(ydt)
        clip_lo = lo + shift if clip_lo is None else max(clip_lo, lo + shift)
        clip_hi = hi + shift
    if clip_lo is not None and conv.opset < 12:
        raise Decline("needs an integer Clip after the layer (Relu or a sub-8-bit container): ai.onnx opset >= 12 "
                      f"({OPSET_FLAG} 13 upgrades the model)")
    try:
        plan = plan_weights(conv, layer) if layer.b_q is None else None
    except Decline as why:
        if not (why.reason.startswith(INEXACT_BIAS) and conv.float_outputs):
            raise
        # exact instead of requantized: the integer op, then the bias in float before the output quantizer
        layer.epilogue = True
        _rewrite_epilogue(conv, layer, why="its bias is not exact in int32 at x_scale * w_scale")
        return
    base = node.name or node.op_type
    x_in = _widen(conv, node, layer.x_q, layer.xq.dtype)
    if layer.trans_a:
        x_in = edit.node(node, "Transpose", [x_in], {"perm": [1, 0]}, f"{base}_transA", x_dt)
    dq_in = node.inputs[0].producer().inputs
    xs = edit.param(dq_in[1], layer.xq.scale.astype(np.float32).reshape(()), f"{base}_x_scale")
    xz = edit.param(dq_in[2] if len(dq_in) > 2 else None, layer.xq.zero.reshape(()).astype(x_dt),
                    f"{base}_x_zero_point")
    ys = edit.param(q.inputs[1], layer.yq.scale.astype(np.float32).reshape(()), f"{base}_y_scale")
    yz = edit.param(q.inputs[2] if len(q.inputs) > 2 and not relabel else None,
                    np.array(y_zp + shift, dtype=out_dt), f"{base}_y_zero_point")
    if plan is None:
        b_in = _widen(conv, node, layer.b_q, layer.bq.dtype)
        bs = edit.const(layer.bq.scale.astype(np.float32).reshape(()), f"{base}_b_scale")
        bz = edit.const(layer.bq.zero.reshape(()).astype(layer.bq.dtype), f"{base}_b_zero_point")
        y = edit.node(node, "QLinearMatMul", [x_in, xs, xz, b_in, bs, bz, ys, yz], None, base, out_dt, replaces=node)
        used = "QLinearMatMul"
    else:
        ws = edit.const(plan.scale.astype(np.float32), f"{base}_w_scale")
        wz = edit.const(plan.zero.astype(plan.dtype), f"{base}_w_zero_point")
        if layer.kind == "conv":
            inputs = [x_in, xs, xz, edit.const(plan.w, f"{base}_w"), ws, wz, ys, yz]
            if plan.bias is not None:
                inputs.append(edit.const(plan.bias, f"{base}_bias"))
            y = edit.node(node, "QLinearConv", inputs, None, base, out_dt, replaces=node)
            y.producer().attributes.update(dict(node.attributes))
            used = "QLinearConv"
        elif plan.bias is None:
            w = edit.const(plan.w, f"{base}_w")
            y = edit.node(node, "QLinearMatMul", [x_in, xs, xz, w, ws, wz, ys, yz], None, base, out_dt,
                          replaces=node)
            used = "QLinearMatMul"
        else:
            y = _dense_as_conv(conv, layer, x_in, [xs, xz], plan, [ws, wz, ys, yz], out_dt)
            used = "QLinearConv"
    if clip_lo is not None:
        y = edit.int_clip(node, y, out_dt, clip_lo, clip_hi, f"{base}_out")
    conv.converted[used] = conv.converted.get(used, 0) + 1
    if relabel:
        fdt = np.dtype(constant_array(q.inputs[1]).dtype)  # the original Q's input type
        y = edit.node(node, "DequantizeLinear", [y, q.inputs[1], yz], None, f"{base}_relabel", fdt)
        q.replace_input_with(0, y)
        conv.notes.append(
            f"{base}: {used} computes in the input's {x_dt} container (onnxruntime has no {x_dt} -> {y_dt} "
            f"kernel); DequantizeLinear -> {describe(q)} relabels it to {y_dt} exactly"
        )
        _remove_layer(conv, layer, [])
        return
    if ydt in NARROW:
        y = edit.node(node, "Cast", [y], {"to": int(ir.DataType.from_numpy(ydt))}, f"{base}_narrow", ydt)
    old = q.outputs[0]
    y.shape = old.shape
    if old.type is not None:
        y.type = old.type
    name = old.name
    edit.take_over(old, y)
    old.name = None
    y.name = name
    _remove_layer(conv, layer, [q])


def _remove_layer(conv: Conversion, layer: Layer, extra: list[ir.Node]) -> None:
    nodes = [layer.node, *layer.chain, *extra]
    for n in nodes:
        conv.edit.dead.extend(n.inputs)
    conv.edit.dead.extend(layer.sources)
    conv.graph.remove(nodes, safe=True)


def _rewrite_epilogue(conv: Conversion, layer: Layer, why: str = "") -> None:
    """Per-channel output scales: ConvInteger/MatMulInteger, then Cast * (s_x s_w) + bias -> [Relu] -> the Q."""
    edit = conv.edit
    node, q = layer.node, layer.q
    plan = plan_weights(conv, layer)
    base = node.name or node.op_type
    if plan.zero.size > 1 and layer.kind == "conv":
        if not per_tensor(plan.zero):
            raise Decline("per-channel weight zero points: onnxruntime's ConvInteger takes a per-tensor one only")
        plan.zero = scalar(plan.zero)
    x_dt = NARROW.get(layer.xq.dtype, layer.xq.dtype)
    x_in = _widen(conv, node, layer.x_q, layer.xq.dtype)
    if layer.trans_a:
        x_in = edit.node(node, "Transpose", [x_in], {"perm": [1, 0]}, f"{base}_transA", x_dt)
    c = layer.channels
    xz = edit.const(layer.xq.zero.reshape(()).astype(x_dt), f"{base}_x_zero_point")
    wz = edit.const(plan.zero.astype(plan.dtype), f"{base}_w_zero_point")
    w = edit.const(plan.w, f"{base}_w")
    if layer.kind == "conv":
        acc = edit.node(node, "ConvInteger", [x_in, w, xz, wz], None, base, np.int32, replaces=node)
        acc.producer().attributes.update(dict(node.attributes))
        used = "ConvInteger"
        channel_shape = (c,) + (1,) * (plan.w.ndim - 2)
    else:
        acc = edit.node(node, "MatMulInteger", [x_in, w, xz, wz], None, base, np.int32, replaces=node)
        used = "MatMulInteger"
        channel_shape = (c,)
    fdt = np.dtype(layer.yq.scale.dtype) if np.dtype(layer.yq.scale.dtype).kind == "f" else np.dtype(np.float32)
    if node.outputs[0].dtype is not None:
        fdt = np.dtype(node.outputs[0].dtype.numpy())
    mult = float(layer.xq.scale.reshape(())) * np.broadcast_to(plan.scale, (c,))
    real = np.zeros(c)
    if layer.bias_int is not None:
        real = layer.bias_int.astype(np.float64) * layer.bias_scale.astype(np.float64)
    elif layer.bias_float is not None:
        real = layer.bias_float
    real = real * layer.beta * plan.factor + plan.shift
    y = edit.node(node, "Cast", [acc], {"to": int(ir.DataType.from_numpy(fdt))}, f"{base}_acc_float", fdt)
    y = edit.node(node, "Mul", [y, edit.const(mult.astype(fdt).reshape(channel_shape), f"{base}_multiplier")],
                  None, f"{base}_rescale", fdt)
    if np.any(real != 0):
        y = edit.node(node, "Add", [y, edit.const(real.astype(fdt).reshape(channel_shape), f"{base}_bias")],
                      None, f"{base}_bias_add", fdt)
    if layer.relu:
        y = edit.node(node, "Relu", [y], None, f"{base}_relu", fdt)
    if layer.float_output:
        old = node.outputs[0]
        y.shape = old.shape
        edit.take_over(old, y)
        _remove_layer(conv, layer, [])
        conv.converted[used] = conv.converted.get(used, 0) + 1
        conv.notes.append(f"{base}: {used} + float epilogue (no output quantizer: what follows the layer stays float)")
        return
    q.replace_input_with(0, y)
    _remove_layer(conv, layer, [])
    conv.converted[used] = conv.converted.get(used, 0) + 1
    conv.notes.append(f"{base}: {used} + float epilogue ("
                      + (why or f"per-channel output scales in {describe(q)}, which QLinear ops cannot take") + ")")


def _relu_is_noop(q: ir.Node, dtype: np.dtype, zp: int) -> bool:
    if int_range(dtype)[0] >= zp:
        return True
    out = q.outputs[0]
    if out.is_graph_output() or not out.uses():
        return False
    for user, index in out.uses():
        if not (is_op(user, "Clip") and index == 0 and len(user.inputs) > 1 and user.inputs[1] is not None):
            return False
        lo = constant_array(user.inputs[1])
        if lo is None or lo.size != 1 or int(lo.reshape(())) < zp:
            return False
    return True


def _widen(conv: Conversion, anchor: ir.Node, value: ir.Value, dtype: np.dtype) -> ir.Value:
    """An int8/uint8 view of an activation (Cast for int4/int2 containers; cached per value)."""
    if dtype not in NARROW:
        return value
    key = id(value)
    if key not in conv.widened:
        wide = NARROW[dtype]
        names = conv.edit.names
        producer = value.producer()
        cast = ir.node("Cast", [value], attributes={"to": int(ir.DataType.from_numpy(wide))},
                       name=unique_name(f"{value.name or 'x'}_widen", names))
        cast.outputs[0].name = unique_name(f"{value.name or 'x'}_{wide}", names)
        cast.outputs[0].type = ir.TensorType(ir.DataType.from_numpy(wide))
        cast.outputs[0].shape = value.shape
        if producer is None:
            conv.graph.insert_before(anchor, cast)
        else:
            conv.graph.insert_after(producer, cast)
        conv.widened[key] = cast.outputs[0]
    return conv.widened[key]


def _dense_as_conv(conv: Conversion, layer: Layer, x_in: ir.Value, x_params: list, plan: WeightPlan, rest: list,
                   y_dt: np.dtype) -> ir.Value:
    """MatMul/Gemm with bias: Reshape [-1, K, 1] -> QLinearConv (kernel 1) -> Reshape back."""
    edit = conv.edit
    node = layer.node
    base = node.name or node.op_type
    k, n = plan.w.shape
    x_dt = NARROW.get(layer.xq.dtype, layer.xq.dtype)
    flat = edit.node(node, "Reshape", [x_in, edit.const(np.array([-1, k, 1], np.int64), f"{base}_in_shape")],
                     None, f"{base}_reshape_in", x_dt)
    w_conv = edit.const(np.ascontiguousarray(plan.w.T)[:, :, None], f"{base}_w")
    ws, wz, ys, yz = rest
    bias = edit.const(plan.bias, f"{base}_bias")
    qconv = edit.node(node, "QLinearConv", [flat, *x_params, w_conv, ws, wz, ys, yz, bias],
                      {"kernel_shape": [1], "strides": [1], "pads": [0, 0], "dilations": [1], "group": 1},
                      base, y_dt, replaces=node)
    if node.op_type == "Gemm" or rank_of(node.inputs[0]) == 2:
        target = edit.const(np.array([-1, n], np.int64), f"{base}_out_shape")
    else:
        dims = edit.node(node, "Shape", [x_in], None, f"{base}_shape", np.int64)
        lead = edit.node(node, "Slice", [dims, edit.const(np.array([0], np.int64), f"{base}_zero"),
                                         edit.const(np.array([-1], np.int64), f"{base}_minus_one")],
                         None, f"{base}_lead", np.int64)
        target = edit.node(node, "Concat", [lead, edit.const(np.array([n], np.int64), f"{base}_n")],
                           {"axis": 0}, f"{base}_out_shape", np.int64)
    return edit.node(node, "Reshape", [qconv, target], None, f"{base}_reshape_out", y_dt)
