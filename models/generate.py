#!/usr/bin/env python3
"""Generate the small feature models of the qonnx-tools zoo, with reference outputs.

    python models/generate.py            # (re)write models/generated/*.onnx, *.npz and print manifest rows
    python models/generate.py --check    # regenerate in memory and compare with the files on disk

Deterministic: fixed seeds, models built with ``onnx.helper`` only (no framework).

The reference outputs are NOT computed by qonnx_tools (this file must never import it).
Each model is evaluated node by node by a small, separate evaluator written here:

* QONNX ops (IntQuant/Quant, BipolarQuant, Trunc v1/v2, FloatQuant, MultiThreshold)
  run a literal transcription of the sample implementations in the QONNX spec
  (shared/reference/qonnx-spec/*.md); the rounding modes the spec only gives as a
  table (UP, DOWN, HALF_UP, HALF_DOWN) are transcribed from that table's definitions,
  and MultiThreshold from FINN's definition (count of thresholds with x >= t, times
  out_scale, plus out_bias);
* standard ONNX ops run in onnxruntime, one node at a time;
* channels-last ops are transposed to channels-first (X, and W of a Conv), run in onnxruntime and
  transposed back.

Each ``.npz`` holds ``input:<name>`` (the seeded input) and ``output:<name>`` (expected output).
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = Path(__file__).resolve().parent
OUT_DIR = HERE / "generated"
QONNX = "qonnx.custom_op.general"
CHANNELS_LAST = "qonnx.custom_op.channels_last"
OPSET = 13
F32 = np.float32


# ---------------------------------------------------------------------------------------------
# Reference numerics: literal transcription of the QONNX spec sample implementations
# ---------------------------------------------------------------------------------------------

def spec_min_int(signed, narrow_range, bit_width):
    if signed and narrow_range:
        value = -(2 ** (bit_width - 1)) + 1
    elif signed and not narrow_range:
        value = -(2 ** (bit_width - 1))
    else:
        value = 0 * bit_width
    return value


def spec_max_int(signed, narrow_range, bit_width):
    if not signed and not narrow_range:
        value = (2**bit_width) - 1
    elif not signed and narrow_range:
        value = (2**bit_width) - 2
    else:
        value = (2 ** (bit_width - 1)) - 1
    return value


def _half_up(x):  # nearest, ties away from zero (table column HALF_UP)
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def _half_down(x):  # nearest, ties towards zero (table column HALF_DOWN)
    return np.sign(x) * np.ceil(np.abs(x) - 0.5)


def spec_rounding(mode):
    mode = mode.upper()
    table = {
        "ROUND": np.round,  # half to even
        "HALF_EVEN": np.round,
        "CEIL": np.ceil,
        "FLOOR": np.floor,
        "UP": lambda x: np.sign(x) * np.ceil(np.abs(x)),  # away from zero
        "DOWN": np.fix,  # towards zero
        "HALF_UP": _half_up,
        "HALF_DOWN": _half_down,
    }
    return table[mode]


def spec_quant(inp_tensor, scale, zeropt, bitwidth, signed, narrow, rounding_mode):
    y_int = inp_tensor / scale
    y_int = y_int + zeropt
    min_int_val = np.asarray(spec_min_int(signed, narrow, bitwidth))
    max_int_val = np.asarray(spec_max_int(signed, narrow, bitwidth))
    y_int = np.where(y_int > max_int_val, max_int_val.astype(y_int.dtype), y_int)
    y_int = np.where(y_int < min_int_val, min_int_val.astype(y_int.dtype), y_int)
    y_int = spec_rounding(rounding_mode)(y_int)
    out_tensor = y_int - zeropt
    out_tensor = out_tensor * scale
    return out_tensor


def spec_bipolar_quant(inp_tensor, scale):
    y_int = inp_tensor
    y_ones = np.ones(y_int.shape, dtype=y_int.dtype)
    y_int = np.where(y_int >= 0.0, y_ones, -y_ones)
    return y_int * scale


def spec_trunc_v1(inp_tensor, scale, zeropt, input_bit_width, output_bit_width, rounding_mode):
    y = inp_tensor / scale
    y = y + zeropt
    y = np.round(y)
    trunc_bit_width = input_bit_width - output_bit_width
    trunc_scale = 2.0**trunc_bit_width
    y = y / trunc_scale
    y = spec_rounding(rounding_mode)(y)
    y = y - zeropt
    y = y * scale
    return y


def spec_trunc_v2(inp_tensor, scale, zeropt, input_bit_width, narrow, signed, output_scale, output_bit_width,
                  rounding_mode):
    y = inp_tensor / scale
    y = y + zeropt
    y = np.round(y)
    trunc_scale = 2 ** np.round(np.log2(output_scale / scale))
    y = y / trunc_scale
    min_int_val = np.asarray(spec_min_int(signed, narrow, output_bit_width))
    max_int_val = np.asarray(spec_max_int(signed, narrow, output_bit_width))
    y = np.where(y > max_int_val, max_int_val.astype(y.dtype), y)
    y = np.where(y < min_int_val, min_int_val.astype(y.dtype), y)
    y = spec_rounding(rounding_mode)(y)
    output_zeropt = zeropt / trunc_scale
    y = y - output_zeropt
    y = y * output_scale
    return y


def spec_compute_max_val(exponent_bit_width, mantissa_bit_width, exponent_bias):
    max_exponent = (2.0**exponent_bit_width) - 1.0 - exponent_bias
    max_mantissa = np.sum(2.0 ** np.arange(0, -1.0 * mantissa_bit_width - 1.0, -1.0))
    return max_mantissa * (2**max_exponent)


def spec_float_quant(X, scale, exponent_bitwidth, mantissa_bitwidth, exponent_bias, signed=True, max_val=None,
                     rounding_mode="ROUND"):
    """Saturating FloatQuant (the spec's float_quant with saturation=True)."""
    X = X / scale
    eps = np.finfo(X.dtype).tiny
    fp_internal_scale_min = 1.0 - exponent_bias - mantissa_bitwidth
    internal_scale = np.floor(np.log2(np.abs(X) + eps)) - mantissa_bitwidth
    internal_scale = np.maximum(internal_scale, fp_internal_scale_min)
    internal_scale = np.exp2(internal_scale)
    x_q = internal_scale * spec_rounding(rounding_mode)(X / internal_scale)
    max_value = spec_compute_max_val(exponent_bitwidth, mantissa_bitwidth, exponent_bias)
    max_value = max_value if max_val is None else np.minimum(max_value, max_val)
    min_value = 0.0 if not signed else -max_value
    x_q = np.clip(x_q, min_value, max_value)
    return x_q * scale


def finn_multithreshold(x, thresholds, out_scale=1.0, out_bias=0.0, data_layout="NCHW"):
    """FINN MultiThreshold: per channel c, y = out_scale * #{t in thresholds[c] : x >= t} + out_bias."""
    thresholds = np.asarray(thresholds)
    if x.ndim == 2:
        caxis = 1
    elif data_layout.upper().endswith("C"):
        caxis = x.ndim - 1
    else:
        caxis = 1
    xc = np.moveaxis(x, caxis, -1)  # (..., C)
    th = thresholds if thresholds.shape[0] > 1 else np.broadcast_to(thresholds, (xc.shape[-1], thresholds.shape[1]))
    counts = (xc[..., None] >= th).sum(axis=-1).astype(F32)
    y = np.moveaxis(counts, -1, caxis)
    return (out_scale * y + out_bias).astype(F32)


# ---------------------------------------------------------------------------------------------
# The independent evaluator
# ---------------------------------------------------------------------------------------------

def _attrs(node):
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _s(value, default):
    if value is None:
        return default
    return value.decode() if isinstance(value, bytes) else value


def _ort_node(node, arrays, opset):
    import onnxruntime as ort

    inputs = [helper.make_tensor_value_info(f"i{k}", helper.np_dtype_to_tensor_dtype(a.dtype), a.shape)
              for k, a in enumerate(arrays)]
    names = [f"o{k}" for k in range(len(node.output))]
    clone = helper.make_node(node.op_type, [f"i{k}" for k in range(len(arrays))], names)
    clone.attribute.extend(node.attribute)
    graph = helper.make_graph([clone], "one", inputs, [onnx.ValueInfoProto(name=n) for n in names])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    inferred = {v.name: v for v in onnx.shape_inference.infer_shapes(model).graph.value_info}
    for out in model.graph.output:
        out.type.CopyFrom(inferred[out.name].type)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return session.run(None, {f"i{k}": a for k, a in enumerate(arrays)})


def evaluate(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    env = dict(feeds)
    for init in model.graph.initializer:
        env[init.name] = numpy_helper.to_array(init)
    opsets = {o.domain: o.version for o in model.opset_import}
    for node in model.graph.node:
        args = [env[name] if name else None for name in node.input]
        a = _attrs(node)
        if node.domain == QONNX:
            if node.op_type in ("Quant", "IntQuant"):
                x, scale, zeropt, bits = args
                y = spec_quant(x, scale, zeropt, int(bits), a.get("signed", 1), a.get("narrow", 0),
                               _s(a.get("rounding_mode"), "ROUND"))
            elif node.op_type == "BipolarQuant":
                y = spec_bipolar_quant(*args)
            elif node.op_type == "Trunc" and opsets.get(QONNX, 1) < 2:
                x, scale, zeropt, ibits, obits = args
                y = spec_trunc_v1(x, scale, zeropt, ibits, obits, _s(a.get("rounding_mode"), "FLOOR"))
            elif node.op_type == "Trunc":
                x, scale, zeropt, ibits, oscale, obits = args
                y = spec_trunc_v2(x, scale, zeropt, ibits, a.get("narrow", 0), a.get("signed", 1), oscale, obits,
                                  _s(a.get("rounding_mode"), "FLOOR"))
            elif node.op_type == "FloatQuant":
                x, scale, e, m, b = args[:5]
                mx = args[5] if len(args) > 5 else None
                y = spec_float_quant(x, scale, e, m, b, True, mx, _s(a.get("rounding_mode"), "ROUND"))
            elif node.op_type == "MultiThreshold":
                y = finn_multithreshold(args[0], args[1], a.get("out_scale", 1.0), a.get("out_bias", 0.0),
                                        _s(a.get("data_layout"), "NCHW"))
            else:
                raise NotImplementedError(node.op_type)
            outs = [np.asarray(y, dtype=F32)]
        elif node.domain == CHANNELS_LAST:
            x = args[0]
            rank = x.ndim
            first = x.transpose((0, rank - 1, *range(1, rank - 1)))
            params = list(args[1:])
            if node.op_type == "Conv":  # qonnx's definition: W is channels-last too, (M, *kernel, C/group)
                params[0] = params[0].transpose((0, rank - 1, *range(1, rank - 1)))
            (y,) = _ort_node(node, [first, *params], OPSET)
            outs = [y.transpose((0, *range(2, rank), 1))]
        else:
            outs = _ort_node(node, args, opsets.get("", OPSET))
        for name, value in zip(node.output, outs):
            env[name] = value
    return {o.name: env[o.name] for o in model.graph.output}


# ---------------------------------------------------------------------------------------------
# Model builders
# ---------------------------------------------------------------------------------------------

def const(name, value, dtype=F32):
    return numpy_helper.from_array(np.asarray(value, dtype=dtype), name)


def vinfo(name, shape):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, list(shape))


def qnode(x, y, prefix, inits, scale, zeropt, bits, signed=1, narrow=0, rounding="ROUND", op="Quant"):
    inits += [const(f"{prefix}_scale", scale), const(f"{prefix}_zeropt", zeropt), const(f"{prefix}_bits", bits)]
    return helper.make_node(op, [x, f"{prefix}_scale", f"{prefix}_zeropt", f"{prefix}_bits"], [y], name=prefix,
                            domain=QONNX, signed=signed, narrow=narrow, rounding_mode=rounding)


def finish(name, nodes, inputs, outputs, inits, qonnx_opset=2, extra_opsets=(), annotations=None):
    graph = helper.make_graph(nodes, name, inputs, outputs, inits)
    if annotations:
        for tensor, dtype in annotations.items():
            ann = graph.quantization_annotation.add(tensor_name=tensor)
            ann.quant_parameter_tensor_names.add(key="finn_datatype", value=dtype)
    opsets = [helper.make_opsetid("", OPSET), helper.make_opsetid(QONNX, qonnx_opset), *extra_opsets]
    model = helper.make_model(graph, opset_imports=opsets, producer_name="qonnx-tools models/generate.py")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def with_ties(rng, shape, step, span):
    """Uniform values in [-span, span] where a quarter are exact rounding ties (k + 0.5) * step."""
    x = rng.uniform(-span, span, size=shape)
    ties = (np.round(rng.uniform(-span / step, span / step, size=shape)) + 0.5) * step
    mask = rng.random(shape) < 0.25
    return np.where(mask, ties, x).astype(F32)


MODES = ("ROUND", "CEIL", "FLOOR", "UP", "DOWN", "HALF_UP", "HALF_DOWN")


def m_rounding_modes(rng):
    inits, nodes, outs = [], [], []
    for mode in MODES:
        nodes.append(qnode("x", f"y_{mode.lower()}", f"q_{mode.lower()}", inits, 0.25, 0.0, 6, rounding=mode))
        outs.append(vinfo(f"y_{mode.lower()}", [2, 64]))
    x = with_ties(rng, (2, 64), 0.25, 9.0)
    x[0, :10] = np.array([5.5, 2.5, 1.6, 1.1, 1.0, -1.0, -1.1, -1.6, -2.5, -5.5], F32) * 0.25  # the spec's table
    return finish("intquant_rounding_modes", nodes, [vinfo("x", [2, 64])], outs, inits), {"x": x}


def m_bitwidths(rng):
    inits, nodes, outs = [], [], []
    combos = [(1, 0), (1, 1), (0, 0), (0, 1)]  # (signed, narrow)
    for bits in range(1, 17):
        signed, narrow = combos[bits % 4]
        if bits == 1 and signed and narrow:
            signed, narrow = 0, 0  # signed narrow 1-bit has the single value 0: keep it meaningful
        scale = 2.0 ** -(bits - 2)
        nodes.append(qnode("x", f"y_b{bits}", f"q_b{bits}", inits, scale, 0.0, bits, signed, narrow, "ROUND"))
        outs.append(vinfo(f"y_b{bits}", [1, 128]))
    x = rng.uniform(-3.0, 3.0, size=(1, 128)).astype(F32)
    return finish("intquant_bitwidths", nodes, [vinfo("x", [1, 128])], outs, inits), {"x": x}


def m_signed_narrow(rng):
    inits, nodes, outs = [], [], []
    for signed in (0, 1):
        for narrow in (0, 1):
            tag = f"s{signed}n{narrow}"
            nodes.append(qnode("x", f"y_{tag}", f"q_{tag}", inits, 0.5, 0.0, 3, signed, narrow))
            outs.append(vinfo(f"y_{tag}", [4, 16]))
    x = rng.uniform(-6.0, 6.0, size=(4, 16)).astype(F32)
    return finish("intquant_signed_narrow", nodes, [vinfo("x", [4, 16])], outs, inits), {"x": x}


def m_zero_points(rng):
    inits, nodes = [], []
    nodes.append(qnode("x", "y_tensor", "q_zp", inits, 0.05, 37.0, 8, signed=0))
    zp = np.array([0.0, 3.0, -2.0, 7.0], F32).reshape(1, 4, 1)
    sc = np.array([0.1, 0.2, 0.05, 0.25], F32).reshape(1, 4, 1)
    nodes.append(qnode("x", "y_channel", "q_zpc", inits, sc, zp, 4, signed=1))
    x = rng.uniform(-2.0, 4.0, size=(2, 4, 8)).astype(F32)
    outs = [vinfo("y_tensor", [2, 4, 8]), vinfo("y_channel", [2, 4, 8])]
    return finish("intquant_zero_points", nodes, [vinfo("x", [2, 4, 8])], outs, inits), {"x": x}


def m_per_channel_conv(rng):
    inits, nodes = [], []
    nodes.append(qnode("x", "xq", "q_in", inits, 1 / 64, 0.0, 8, signed=1))
    w = rng.normal(0, 0.3, size=(6, 3, 3, 3)).astype(F32)
    inits.append(const("w", w))
    wscale = (np.abs(w).reshape(6, -1).max(axis=1) / 7).reshape(6, 1, 1, 1).astype(F32)
    nodes.append(qnode("w", "wq", "q_w", inits, wscale, 0.0, 4, signed=1, narrow=1))
    inits.append(const("b", rng.normal(0, 0.1, size=6)))
    nodes.append(helper.make_node("Conv", ["xq", "wq", "b"], ["c"], name="conv", pads=[1, 1, 1, 1]))
    nodes.append(helper.make_node("Relu", ["c"], ["r"], name="relu"))
    nodes.append(qnode("r", "y", "q_out", inits, 1 / 16, 0.0, 8, signed=0))
    x = rng.uniform(-1.0, 1.0, size=(1, 3, 8, 8)).astype(F32)
    return finish("intquant_per_channel_conv", nodes, [vinfo("x", [1, 3, 8, 8])], [vinfo("y", [1, 6, 8, 8])],
                  inits), {"x": x}


def m_mlp(rng):
    inits, nodes = [], []
    nodes.append(qnode("x", "xq", "q_in", inits, 1 / 32, 0.0, 8, signed=1))
    w = rng.normal(0, 0.2, size=(16, 10)).astype(F32)
    inits.append(const("w", w))
    wscale = (np.abs(w).max(axis=0) / 127).reshape(1, 10).astype(F32)
    nodes.append(qnode("w", "wq", "q_w", inits, wscale, 0.0, 8, signed=1, narrow=1))
    nodes.append(helper.make_node("MatMul", ["xq", "wq"], ["mm"], name="matmul"))
    inits.append(const("bias", rng.normal(0, 0.05, size=10)))
    nodes.append(helper.make_node("Add", ["mm", "bias"], ["a"], name="add"))
    nodes.append(helper.make_node("Relu", ["a"], ["r"], name="relu"))
    nodes.append(qnode("r", "y", "q_out", inits, 1 / 64, 0.0, 8, signed=0))
    x = rng.uniform(-1.0, 1.0, size=(4, 16)).astype(F32)
    return finish("intquant_mlp", nodes, [vinfo("x", [4, 16])], [vinfo("y", [4, 10])], inits), {"x": x}


def m_blocked(rng):
    """Group-wise (blocked) weight scales, in the two forms exporters write them."""
    inits, nodes = [], []
    w = rng.normal(0, 0.3, size=(8, 16)).astype(F32)  # (out, in); blocks of 4 along 'in'
    blocks = np.abs(w).reshape(8, 4, 4).max(axis=2) / 7  # (8, 4)
    # (a) reshape form: W (8,4,4) with scale (8,4,1), reshaped back to (8,16)
    inits.append(const("w3", w.reshape(8, 4, 4)))
    nodes.append(qnode("w3", "w3q", "q_wblk", inits, blocks.reshape(8, 4, 1), 0.0, 4, signed=1, narrow=1))
    inits.append(const("shape_w", [8, 16], np.int64))
    nodes.append(helper.make_node("Reshape", ["w3q", "shape_w"], ["wa"], name="reshape_w"))
    nodes.append(helper.make_node("Gemm", ["x", "wa"], ["ya"], name="gemm_a", transB=1))
    # (b) expanded form: scale (8,16) constant over each block of 4
    inits.append(const("w", w))
    nodes.append(qnode("w", "wb", "q_wexp", inits, np.repeat(blocks, 4, axis=1), 0.0, 4, signed=1, narrow=1))
    nodes.append(helper.make_node("Gemm", ["x", "wb"], ["yb"], name="gemm_b", transB=1))
    x = rng.uniform(-1.0, 1.0, size=(3, 16)).astype(F32)
    outs = [vinfo("ya", [3, 8]), vinfo("yb", [3, 8])]
    return finish("intquant_blocked_scales", nodes, [vinfo("x", [3, 16])], outs, inits), {"x": x}


def _int_grid(rng, shape, bits, scale):
    lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    return (rng.integers(lo, hi + 1, size=shape) * scale).astype(F32)


def m_trunc_v1(rng):
    inits, nodes, outs = [], [], []
    for mode in ("FLOOR", "ROUND", "CEIL"):
        p = f"t_{mode.lower()}"
        inits += [const(f"{p}_s", 0.125), const(f"{p}_z", 0.0), const(f"{p}_ib", 10.0), const(f"{p}_ob", 6.0)]
        nodes.append(helper.make_node("Trunc", ["x", f"{p}_s", f"{p}_z", f"{p}_ib", f"{p}_ob"], [f"y_{mode.lower()}"],
                                      name=p, domain=QONNX, rounding_mode=mode))
        outs.append(vinfo(f"y_{mode.lower()}", [2, 32]))
    x = _int_grid(rng, (2, 32), 10, 0.125)
    return finish("trunc_v1", nodes, [vinfo("x", [2, 32])], outs, inits, qonnx_opset=1), {"x": x}


def m_trunc_v2(rng):
    inits, nodes, outs = [], [], []
    cases = [("FLOOR", 1, 0, 4), ("ROUND", 1, 1, 5), ("CEIL", 0, 0, 6), ("floor", 1, 0, 3)]
    for k, (mode, signed, narrow, obits) in enumerate(cases):
        p = f"t{k}"
        inits += [const(f"{p}_s", 0.125), const(f"{p}_z", 0.0), const(f"{p}_ib", 10.0),
                  const(f"{p}_os", 0.125 * 2 ** (10 - obits)), const(f"{p}_ob", float(obits))]
        nodes.append(helper.make_node("Trunc", ["x", f"{p}_s", f"{p}_z", f"{p}_ib", f"{p}_os", f"{p}_ob"], [f"y{k}"],
                                      name=p, domain=QONNX, rounding_mode=mode, signed=signed, narrow=narrow))
        outs.append(vinfo(f"y{k}", [2, 32]))
    x = _int_grid(rng, (2, 32), 10, 0.125)
    return finish("trunc_v2", nodes, [vinfo("x", [2, 32])], outs, inits, qonnx_opset=2), {"x": x}


FP_FORMATS = {  # name: (exponent bits, mantissa bits, bias, max_val or None, rounding)
    "e4m3": (4, 3, 7, 448.0, "ROUND"),
    "e5m2": (5, 2, 15, 57344.0, "ROUND"),
    "e2m1": (2, 1, 1, None, "ROUND"),
    "e3m2_floor": (3, 2, 3, None, "FLOOR"),
    "e4m3_ceil_scaled": (4, 3, 7, 448.0, "CEIL"),
}


def m_floatquant(rng):
    inits, nodes, outs = [], [], []
    for name, (e, m, b, mx, mode) in FP_FORMATS.items():
        scale = 0.01 if name.endswith("scaled") else 1.0
        ins = ["x", f"{name}_s", f"{name}_e", f"{name}_m", f"{name}_b"]
        inits += [const(f"{name}_s", scale), const(f"{name}_e", float(e)), const(f"{name}_m", float(m)),
                  const(f"{name}_b", float(b))]
        if mx is not None:
            inits.append(const(f"{name}_mx", mx))
            ins.append(f"{name}_mx")
        nodes.append(helper.make_node("FloatQuant", ins, [f"y_{name}"], name=f"fq_{name}", domain=QONNX,
                                      rounding_mode=mode, has_subnormal=1, saturation=1))
        outs.append(vinfo(f"y_{name}", [4, 64]))
    x = (rng.standard_normal((4, 64)) * np.exp2(rng.integers(-8, 10, size=(4, 64)))).astype(F32)
    return finish("floatquant_formats", nodes, [vinfo("x", [4, 64])], outs, inits), {"x": x}


def m_bipolar(rng):
    inits = [const("s1", 1.0), const("sc", np.array([0.5, 0.25, 1.5, 2.0], F32).reshape(1, 4))]
    nodes = [
        helper.make_node("BipolarQuant", ["x", "s1"], ["y1"], name="bq_unit", domain=QONNX),
        helper.make_node("BipolarQuant", ["x", "sc"], ["yc"], name="bq_channel", domain=QONNX),
    ]
    x = rng.uniform(-1, 1, size=(8, 4)).astype(F32)
    x[0, :] = 0.0  # zero maps to +1
    x[1, 0] = -0.0
    outs = [vinfo("y1", [8, 4]), vinfo("yc", [8, 4])]
    return finish("bipolarquant", nodes, [vinfo("x", [8, 4])], outs, inits), {"x": x}


def m_multithreshold(rng):
    th_nchw = np.sort(rng.uniform(-1, 1, size=(3, 7)), axis=1).astype(F32)
    th_nhwc = np.sort(rng.uniform(-1, 1, size=(3, 3)), axis=1).astype(F32)
    inits = [const("th_nchw", th_nchw), const("th_nhwc", th_nhwc), const("th_shared", [[-0.5, 0.0, 0.5]])]
    nodes = [
        helper.make_node("MultiThreshold", ["x", "th_nchw"], ["y_nchw"], name="mt_nchw", domain=QONNX,
                         out_dtype="INT4", out_scale=1.0, out_bias=-4.0, data_layout="NCHW"),
        helper.make_node("Transpose", ["x"], ["x_nhwc"], name="to_nhwc", perm=[0, 2, 3, 1]),
        helper.make_node("MultiThreshold", ["x_nhwc", "th_nhwc"], ["y_nhwc"], name="mt_nhwc", domain=QONNX,
                         out_dtype="BIPOLAR" if False else "UINT2", data_layout="NHWC"),
        helper.make_node("MultiThreshold", ["x", "th_shared"], ["y_shared"], name="mt_shared", domain=QONNX,
                         out_dtype="", out_scale=0.5, out_bias=0.0),
    ]
    x = rng.uniform(-1.2, 1.2, size=(2, 3, 4, 4)).astype(F32)
    x[0, 0, 0, :3] = th_nchw[0, :3]  # exactly at thresholds: reached (x >= t)
    outs = [vinfo("y_nchw", [2, 3, 4, 4]), vinfo("y_nhwc", [2, 4, 4, 3]), vinfo("y_shared", [2, 3, 4, 4])]
    return finish("multithreshold", nodes, [vinfo("x", [2, 3, 4, 4])], outs, inits), {"x": x}


def m_channels_last(rng):
    inits = [const("w", rng.normal(0, 0.3, size=(4, 3, 3, 3))), const("b", rng.normal(0, 0.1, size=4)),
             const("bn_s", rng.uniform(0.5, 1.5, size=4)), const("bn_b", rng.normal(0, 0.1, size=4)),
             const("bn_m", rng.normal(0, 0.1, size=4)), const("bn_v", rng.uniform(0.5, 1.5, size=4))]
    nodes = [
        qnode("x", "xq", "q_in", inits, 1 / 32, 0.0, 8),
        helper.make_node("Conv", ["xq", "w", "b"], ["c"], name="conv_cl", domain=CHANNELS_LAST, pads=[1, 1, 1, 1],
                         kernel_shape=[3, 3]),
        helper.make_node("BatchNormalization", ["c", "bn_s", "bn_b", "bn_m", "bn_v"], ["bn"], name="bn_cl",
                         domain=CHANNELS_LAST, epsilon=1e-5),
        helper.make_node("MaxPool", ["bn"], ["p"], name="pool_cl", domain=CHANNELS_LAST, kernel_shape=[2, 2],
                         strides=[2, 2]),
        qnode("p", "y", "q_out", inits, 1 / 16, 0.0, 6),
    ]
    x = rng.uniform(-1, 1, size=(1, 8, 8, 3)).astype(F32)
    return finish("channels_last_ops", nodes, [vinfo("x", [1, 8, 8, 3])], [vinfo("y", [1, 4, 4, 4])], inits,
                  extra_opsets=[helper.make_opsetid(CHANNELS_LAST, 1)]), {"x": x}


def m_int_input(rng):
    """A model whose input carries a datatype annotation (UINT8 image, as FINN writes it)."""
    inits, nodes = [], []
    inits.append(const("inv255", 1 / 255))
    nodes.append(helper.make_node("Mul", ["x", "inv255"], ["xs"], name="normalise"))
    nodes.append(qnode("xs", "y", "q", inits, 1 / 16, 0.0, 4, signed=0, rounding="FLOOR"))
    x = rng.integers(0, 256, size=(1, 1, 6, 6)).astype(F32)
    return finish("uint8_input", nodes, [vinfo("x", [1, 1, 6, 6])], [vinfo("y", [1, 1, 6, 6])], inits,
                  annotations={"x": "UINT8"}), {"x": x}


# name: (builder, description, manifest input range/datatype)
BUILDERS = {
    "intquant_rounding_modes": (m_rounding_modes, "IntQuant with each of the 7 rounding modes (ROUND, CEIL, FLOOR, UP, DOWN, HALF_UP, HALF_DOWN); input includes exact ties and the spec's table values", {"range": [-9.0, 9.0]}),
    "intquant_bitwidths": (m_bitwidths, "IntQuant at every bit width 1..16, cycling through the signed/narrow combinations", {"range": [-3.0, 3.0]}),
    "intquant_signed_narrow": (m_signed_narrow, "3-bit IntQuant with all four signed x narrow combinations", {"range": [-6.0, 6.0]}),
    "intquant_zero_points": (m_zero_points, "IntQuant with a non-zero zero-point (per-tensor, unsigned 8-bit) and per-channel zero-points and scales", {"range": [-2.0, 4.0]}),
    "intquant_per_channel_conv": (m_per_channel_conv, "Quant -> Conv with per-output-channel 4-bit narrow weight scales -> Relu -> unsigned 8-bit Quant", {"range": [-1.0, 1.0]}),
    "intquant_mlp": (m_mlp, "Quant -> MatMul with per-column 8-bit narrow weights -> Add bias -> Relu -> unsigned 8-bit Quant", {"range": [-1.0, 1.0]}),
    "intquant_blocked_scales": (m_blocked, "Group-wise (blocked, 4 per group) 4-bit weight scales: reshape form (8,4,4)/(8,4,1) and expanded form (8,16)", {"range": [-1.0, 1.0]}),
    "trunc_v1": (m_trunc_v1, "Trunc v1 (QONNX opset 1: in/out bit widths) 10->6 bits with FLOOR, ROUND and CEIL", {"range": [-64.0, 63.875]}),
    "trunc_v2": (m_trunc_v2, "Trunc v2 (QONNX opset 2: out_scale, signed, narrow) with FLOOR/ROUND/CEIL and lower-case mode spelling", {"range": [-64.0, 63.875]}),
    "floatquant_formats": (m_floatquant, "FloatQuant FP8 E4M3 (max 448), E5M2 (max 57344), FP4 E2M1, E3M2 with FLOOR, scaled E4M3 with CEIL; saturating, subnormals", {"range": "normal * 2**[-8, 9]"}),
    "bipolarquant": (m_bipolar, "BipolarQuant with scale 1 and per-channel scales; zeros (and -0.0) map to +1", {"range": [-1.0, 1.0]}),
    "multithreshold": (m_multithreshold, "MultiThreshold per-channel NCHW with out_bias, NHWC layout, shared thresholds with out_scale; inputs exactly at thresholds", {"range": [-1.2, 1.2]}),
    "channels_last_ops": (m_channels_last, "Channels-last Conv, BatchNormalization and MaxPool (qonnx.custom_op.channels_last) between Quant nodes", {"range": [-1.0, 1.0]}),
    "uint8_input": (m_int_input, "UINT8-annotated input (finn_datatype), scaled by 1/255 and quantized unsigned 4-bit with FLOOR", {"datatype": "UINT8"}),
}


def build_all():
    result = {}
    for seed, (name, (builder, description, rng_info)) in enumerate(BUILDERS.items()):
        rng = np.random.default_rng(1000 + seed)
        model, feeds = builder(rng)
        outputs = evaluate(model, feeds)
        result[name] = (model, feeds, outputs, description, rng_info)
    return result


def npz_bytes(feeds, outputs) -> bytes:
    import io

    buffer = io.BytesIO()
    arrays = {f"input:{k}": v for k, v in feeds.items()}
    arrays.update({f"output:{k}": np.asarray(v) for k, v in outputs.items()})
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare regenerated models with the files on disk")
    args = parser.parse_args(argv)
    built = build_all()
    bad = 0
    OUT_DIR.mkdir(exist_ok=True)
    for name, (model, feeds, outputs, description, rng_info) in built.items():
        data = model.SerializeToString(deterministic=True)
        onnx_path, npz_path = OUT_DIR / f"{name}.onnx", OUT_DIR / f"{name}.npz"
        if args.check:
            ok = onnx_path.exists() and onnx_path.read_bytes() == data
            if ok:
                with np.load(npz_path) as stored:
                    ok = all(np.array_equal(stored[f"output:{k}"], v, equal_nan=True) for k, v in outputs.items())
            print(f"{name}: {'ok' if ok else 'DIFFERS'}")
            bad += not ok
            continue
        onnx_path.write_bytes(data)
        npz_path.write_bytes(npz_bytes(feeds, outputs))
        print(f"{name}: {hashlib.sha256(data).hexdigest()}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
