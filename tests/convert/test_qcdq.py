"""QONNX -> QCDQ (``to_qcdq``) on single-quantizer models built with onnx.helper.

Reference: our NumPy executor on the ORIGINAL model; candidate: onnxruntime (CPU,
graph optimisations disabled) on the CONVERTED model. Inputs include exact rounding
ties ``(k + 0.5 - zp) * scale``, their float neighbours and values beyond the range.
Equality is value-exact (``-0.0 == 0.0``; NaN == NaN).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from qonnx_tools import lowering as L
from qonnx_tools._ir import ir
from qonnx_tools.convert.qcdq import to_qcdq
from qonnx_tools.domains import QONNX, is_qonnx_domain
from qonnx_tools.errors import BadInputError, ConversionError
from qonnx_tools.executor import execute
from qonnx_tools.node_context import NodeContext
from qonnx_tools.ops._rounding import bounds_in_dtype, int_bounds
from qonnx_tools.ops.floatquant import FloatQuant, _float_codes, format_max
from qonnx_tools.ops.intquant import IntQuant, _int_codes
from qonnx_tools.runtime import only_standard_ops, run_onnxruntime

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the executor on 3e38 / scale

MODES = ("ROUND", "CEIL", "FLOOR", "UP", "DOWN", "HALF_UP", "HALF_DOWN")
RNG = np.random.default_rng(1234)
STD17_QONNX1 = [helper.make_opsetid("", 17), helper.make_opsetid(QONNX, 1)]


# -- helpers --------------------------------------------------------------------------------


def qonnx_model(op, x_shape, params, attrs=None, *, qonnx_opset=2, opset=20, dynamic=(), x_known_shape=True,
                extra_nodes=(), output="y"):
    """One QONNX node ``op(x, *params) -> y``; params are initializers, or graph inputs when named in ``dynamic``."""
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x_shape) if x_known_shape else None)]
    inits = []
    for name, value in params.items():
        if value is None:
            continue
        arr = np.asarray(value)
        if name in dynamic:
            elem = helper.np_dtype_to_tensor_dtype(arr.dtype)
            inputs.append(helper.make_tensor_value_info(name, elem, list(arr.shape)))
        else:
            inits.append(numpy_helper.from_array(arr, name))
    node = helper.make_node(op, ["x"] + [n if v is not None else "" for n, v in params.items()], ["y"],
                            domain=QONNX, name="quantizer", **(attrs or {}))
    graph = helper.make_graph([node, *extra_nodes], "g", inputs,
                              [helper.make_tensor_value_info(output, TensorProto.FLOAT, None)], inits)
    imports = [helper.make_opsetid("", opset), helper.make_opsetid(QONNX, qonnx_opset)]
    model = helper.make_model(graph, opset_imports=imports)
    model.ir_version = 10
    return ir.from_proto(model)


def convert_and_compare(model, feeds, **options):
    """Executor on the original vs onnxruntime on the converted model; returns the result."""
    reference = execute(model, feeds)
    result = to_qcdq(model, **options)
    converted = result.model
    assert only_standard_ops(converted)
    assert not any(is_qonnx_domain(d) for d in converted.opset_imports)
    got = run_onnxruntime(converted, {k: v for k, v in feeds.items() if k in {i.name for i in converted.graph.inputs}})
    for name, want in reference.items():
        assert_same(got[name], want)
    return result


def assert_same(got, want):
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape and got.dtype == want.dtype
    bad = ~((got == want) | (np.isnan(got) & np.isnan(want)))
    if bad.any():
        idx = np.argwhere(bad)[:5]
        raise AssertionError(
            f"{int(bad.sum())} of {bad.size} differ; e.g. at {idx.tolist()}: got {got[bad][:5]} want {want[bad][:5]}"
        )


def op_types(model):
    return [n.op_type for n in model.graph]


def node_of(model, op_type):
    return next(n for n in model.graph if n.op_type == op_type)


def tie_inputs(scale, zeropt, lo, hi, shape_tail=(), extra=64):
    """Values at every rounding tie of the range (and one beyond), their float neighbours,
    the range extremes and random values; shaped (N, *shape_tail) with the scale broadcast."""
    scale = np.float32(scale)
    k = np.arange(lo - 2, hi + 2, dtype=np.float32)
    ties = ((k + np.float32(0.5) - np.float32(zeropt)) * scale).astype(np.float32)
    grid = ((k - np.float32(zeropt)) * scale).astype(np.float32)
    values = np.concatenate([
        ties, np.nextafter(ties, np.float32(np.inf)), np.nextafter(ties, np.float32(-np.inf)), grid,
        np.float32([0.0, -0.0, 1e-30, -1e-30, 3e38, -3e38]),
        (RNG.uniform(lo - 3, hi + 3, extra).astype(np.float32) - np.float32(zeropt)) * scale,
    ]).astype(np.float32)
    n = int(np.prod(shape_tail)) if shape_tail else 1
    pad = (-values.size) % n
    values = np.concatenate([values, values[:pad]])
    return values.reshape((-1, *shape_tail)) if shape_tail else values.reshape(-1, 1)


def int_range(bits, signed, narrow):
    lo, hi = int_bounds(signed, narrow, bits)
    return int(lo), int(hi)


def intquant(x_shape, scale, zeropt, bits, signed, narrow, mode="ROUND", **kw):
    return qonnx_model("Quant", x_shape,
                       {"scale": np.asarray(scale, np.float32), "zeropt": np.asarray(zeropt, np.float32),
                        "bits": np.asarray(bits, np.float32)},
                       dict(signed=int(signed), narrow=int(narrow), rounding_mode=mode), **kw)


def container_of(model):
    """Element type of the QuantizeLinear output (its zero-point's type)."""
    q = node_of(model, "QuantizeLinear")
    return q.inputs[2].const_value.dtype


# -- IntQuant: activations ------------------------------------------------------------------


@pytest.mark.parametrize("bits", [1, 2, 3, 4, 5, 7, 8])
@pytest.mark.parametrize("signed,narrow", [(1, 0), (1, 1), (0, 0), (0, 1)])
def test_intquant_round_bits_1_to_8_is_qcdq(bits, signed, narrow):
    lo, hi = int_range(bits, signed, narrow)
    scale = np.float32(0.0371)
    x = tie_inputs(scale, 0, lo, hi)
    result = convert_and_compare(intquant(x.shape, scale, 0, bits, signed, narrow), {"x": x})
    model = result.model
    ops = op_types(model)
    container = (-128, 127) if signed else (0, 255)
    assert ops[0] == "QuantizeLinear" and ops[-1] == "DequantizeLinear"
    assert container_of(model) == (ir.DataType.INT8 if signed else ir.DataType.UINT8)
    if (lo, hi) == container:
        assert ops == ["QuantizeLinear", "DequantizeLinear"]
    else:
        assert ops == ["QuantizeLinear", "Clip", "DequantizeLinear"]
        clip = node_of(model, "Clip")
        assert (int(clip.inputs[1].const_value.numpy()), int(clip.inputs[2].const_value.numpy())) == (lo, hi)
    assert dict(model.opset_imports) == {"": 20}


@pytest.mark.parametrize("mode", [m for m in MODES if m != "ROUND"])
@pytest.mark.parametrize("bits,signed,narrow", [(1, 1, 0), (2, 1, 1), (4, 0, 0), (8, 1, 0), (8, 0, 1), (13, 1, 1)])
def test_intquant_other_rounding_modes_are_emulated_exactly(mode, bits, signed, narrow):
    lo, hi = int_range(bits, signed, narrow)
    scale = np.float32(0.125 if bits > 8 else 0.0713)
    x = tie_inputs(scale, 0, lo, hi) if bits <= 8 else tie_inputs(scale, 0, -40, 40)
    x = np.concatenate([x, np.float32([[lo * scale - 0.3 * scale], [hi * scale + 0.4 * scale]])])
    result = convert_and_compare(intquant(x.shape, scale, 0, bits, signed, narrow, mode), {"x": x})
    ops = op_types(result.model)
    assert "QuantizeLinear" not in ops and "Div" in ops and "Mul" in ops


@pytest.mark.parametrize("bits", [9, 12, 15, 16])
@pytest.mark.parametrize("signed,narrow", [(1, 0), (1, 1), (0, 0), (0, 1)])
def test_intquant_9_to_16_bits_uses_int16_at_opset_21(bits, signed, narrow):
    lo, hi = int_range(bits, signed, narrow)
    scale = np.float32(0.003)
    x = np.concatenate([tie_inputs(scale, 0, lo, lo + 40), tie_inputs(scale, 0, hi - 40, hi)])
    result = convert_and_compare(intquant(x.shape, scale, 0, bits, signed, narrow), {"x": x})
    model = result.model
    assert dict(model.opset_imports)[""] == 21
    assert container_of(model) == (ir.DataType.INT16 if signed else ir.DataType.UINT16)
    ops = op_types(model)
    full = (lo, hi) == ((-(2**15), 2**15 - 1) if signed else (0, 2**16 - 1))
    # onnxruntime has no int16 Clip kernel: narrower ranges are clamped in float after DQ
    assert ops == (["QuantizeLinear", "DequantizeLinear"] if full else ["QuantizeLinear", "DequantizeLinear", "Clip"])


@pytest.mark.parametrize("bits", [12, 16])
def test_intquant_16_bit_below_opset_21_is_emulated(bits):
    scale = np.float32(0.01)
    x = tie_inputs(scale, 0, -300, 300)
    result = convert_and_compare(intquant(x.shape, scale, 0, bits, 1, 1), {"x": x}, opset=20)
    assert "QuantizeLinear" not in op_types(result.model)
    assert dict(result.model.opset_imports)[""] == 20


@pytest.mark.parametrize("bits,signed", [(17, 1), (24, 0), (32, 1)])
def test_intquant_above_16_bits_is_emulated(bits, signed):
    scale = np.float32(1.0 / 1024)
    lo, hi = int_range(bits, signed, False)
    x = np.concatenate([tie_inputs(scale, 0, -100 if signed else 0, 100),
                        np.float32([[lo * scale * 1.5], [hi * scale * 1.5], [hi * scale]])])
    result = convert_and_compare(intquant(x.shape, scale, 0, bits, signed, 0), {"x": x})
    assert "QuantizeLinear" not in op_types(result.model)


@pytest.mark.parametrize("signed,narrow,lo_hi,container", [
    (1, 0, (-8, 7), ir.DataType.INT4), (0, 0, (0, 15), ir.DataType.UINT4), (1, 1, (-7, 7), ir.DataType.INT8),
])
def test_intquant_4_bit_at_opset_21_uses_int4_without_clip(signed, narrow, lo_hi, container):
    scale = np.float32(0.25)
    x = tie_inputs(scale, 0, *lo_hi)
    result = convert_and_compare(intquant(x.shape, scale, 0, 4, signed, narrow), {"x": x}, opset=21)
    assert container_of(result.model) == container
    assert ("Clip" in op_types(result.model)) == (container == ir.DataType.INT8)


def test_intquant_4_bit_default_opset_keeps_int8_and_clip():
    x = tie_inputs(0.25, 0, -8, 7)
    result = convert_and_compare(intquant(x.shape, 0.25, 0, 4, 1, 0), {"x": x})
    assert container_of(result.model) == ir.DataType.INT8 and "Clip" in op_types(result.model)
    assert dict(result.model.opset_imports)[""] == 20


@pytest.mark.parametrize("signed,bits,zp", [(0, 8, 64), (0, 8, 255), (0, 4, 7), (1, 8, -20), (1, 5, 3), (0, 12, 1000)])
def test_integer_zero_point_is_exact_at_ties(signed, bits, zp):
    lo, hi = int_range(bits, signed, False)
    scale = np.float32(0.0155)
    x = tie_inputs(scale, zp, lo, hi) if bits <= 8 else tie_inputs(scale, zp, 900, 1100)
    # values whose x/scale is just off a tie: fl(x/scale + zp) may round onto/over the tie
    near = ((np.arange(lo, hi, dtype=np.float32) - zp + np.float32(0.5)) * scale)[:, None]
    near = np.concatenate([near * np.float32(1 + 2e-7), near * np.float32(1 - 2e-7)]).astype(np.float32)
    x = np.concatenate([x, near]).astype(np.float32)
    result = convert_and_compare(intquant(x.shape, scale, zp, bits, signed, 0), {"x": x})
    ops = op_types(result.model)
    assert ops[:3] == ["Div", "Add", "QuantizeLinear"] and "DequantizeLinear" in ops
    dq = node_of(result.model, "DequantizeLinear")
    assert int(dq.inputs[2].const_value.numpy()) == zp


def test_direct_quantizelinear_with_zero_point_would_not_be_exact():
    """Why integer zero-points get Div->Add first: QuantizeLinear(x, s, zp) rounds x/s before
    adding zp, IntQuant rounds fl(x/s + zp); they differ near ties (onnxruntime shows it)."""
    scale, zp = np.float32(0.0155), 64
    k = np.arange(-64, 191, dtype=np.float32)
    x = (((k + np.float32(0.5)) * scale) * np.float32(1 + 3e-7)).astype(np.float32).reshape(-1, 1)
    reference = execute(intquant(x.shape, scale, zp, 8, 0, 0), {"x": x})["y"]
    direct = helper.make_model(helper.make_graph(
        [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"]),
         helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"])],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x.shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(scale.reshape(()), "s"), numpy_helper.from_array(np.uint8(zp).reshape(()), "z")]),
        opset_imports=[helper.make_opsetid("", 20)])
    got = run_onnxruntime(ir.from_proto(direct), {"x": x})["y"]
    assert np.any(got != reference)


@pytest.mark.parametrize("mode", ["ROUND", "FLOOR", "HALF_DOWN"])
@pytest.mark.parametrize("zp", [0.5, -3.25, 100.7])
def test_non_integer_zero_point_is_emulated(mode, zp):
    scale = np.float32(0.05)
    x = tie_inputs(scale, zp, -128, 127)
    result = convert_and_compare(intquant(x.shape, scale, zp, 8, 1, 0, mode), {"x": x})
    ops = op_types(result.model)
    assert "QuantizeLinear" not in ops and ops[:2] == ["Div", "Add"] and "Sub" in ops


def test_per_channel_scale_is_per_axis():
    scale = np.float32([0.5, 0.25, 0.125, 0.0625]).reshape(1, 4, 1, 1)
    x = RNG.uniform(-20, 20, (2, 4, 3, 3)).astype(np.float32)
    x[0, :, 0, 0] = (np.float32([3.5, -2.5, 7.5, 0.5]) * scale.reshape(-1)).astype(np.float32)
    result = convert_and_compare(intquant(x.shape, scale, 0, 4, 1, 1), {"x": x})
    q = node_of(result.model, "QuantizeLinear")
    assert q.attributes["axis"].value == 1
    assert tuple(q.inputs[1].const_value.shape) == (4,)


def test_per_channel_with_rank_unknown_uses_negative_axis():
    scale = np.float32([0.5, 0.25, 0.125]).reshape(3, 1)
    x = RNG.uniform(-10, 10, (3, 5)).astype(np.float32)
    model = intquant(x.shape, scale, 0, 8, 1, 0, x_known_shape=False)
    result = convert_and_compare(model, {"x": x})
    q = node_of(result.model, "QuantizeLinear")
    assert q.attributes["axis"].value in (0, -2)


def test_per_channel_integer_zero_points():
    scale = np.float32([0.5, 0.25, 0.125]).reshape(3, 1)
    zp = np.float32([0, 10, 200]).reshape(3, 1)
    x = np.stack([tie_inputs(s, z, 0, 255)[:, 0][:560] for s, z in zip(scale.ravel(), zp.ravel())])
    result = convert_and_compare(intquant(x.shape, scale, zp, 8, 0, 0), {"x": x})
    dq = node_of(result.model, "DequantizeLinear")
    assert dq.attributes["axis"].value == 0
    assert dq.inputs[2].const_value.numpy().tolist() == [0, 10, 200]


def _blocked_pair(mode, x, block_scale, axis, bits=4, signed=1, narrow=0, zp=0.0):
    """(blocked-shape model to convert, equivalent expanded-scale model the executor runs)."""
    expanded = np.repeat(block_scale, x.shape[axis] // block_scale.shape[axis], axis=axis)
    blocked = intquant(x.shape, block_scale, zp, bits, signed, narrow, mode)
    reference = intquant(x.shape, expanded, zp, bits, signed, narrow, mode)
    return blocked, reference


@pytest.mark.parametrize("block_scale_shape,signed,zp", [((1, 4), 1, 0.0), ((3, 4), 1, 0.0), ((1, 4), 0, 5.0)])
def test_blocked_scale_uses_block_size_at_opset_21(block_scale_shape, signed, zp):
    x = RNG.uniform(-3, 3, (3, 16)).astype(np.float32)
    block_scale = RNG.uniform(0.05, 0.4, block_scale_shape).astype(np.float32)
    blocked, reference = _blocked_pair("ROUND", x, block_scale, axis=1, signed=signed, zp=zp)
    want = execute(reference, {"x": x})["y"]
    result = to_qcdq(blocked)
    assert dict(result.model.opset_imports)[""] == 21
    dq = node_of(result.model, "DequantizeLinear")  # (with zp != 0, Q quantizes x/s + zp per tensor)
    assert dq.attributes["axis"].value == 1 and dq.attributes["block_size"].value == 4
    assert_same(run_onnxruntime(result.model, {"x": x})["y"], want)


@pytest.mark.parametrize("mode,opset", [("FLOOR", None), ("ROUND", 20)])
def test_blocked_scale_emulated_when_qdq_unavailable(mode, opset):
    x = RNG.uniform(-3, 3, (2, 12)).astype(np.float32)
    block_scale = RNG.uniform(0.05, 0.4, (1, 3)).astype(np.float32)
    blocked, reference = _blocked_pair(mode, x, block_scale, axis=1)
    want = execute(reference, {"x": x})["y"]
    result = to_qcdq(blocked, opset=opset)
    assert "QuantizeLinear" not in op_types(result.model)
    assert_same(run_onnxruntime(result.model, {"x": x})["y"], want)


def test_per_element_scale_is_emulated():
    x = RNG.uniform(-3, 3, (3, 4)).astype(np.float32)
    scale = RNG.uniform(0.05, 0.4, (3, 4)).astype(np.float32)
    result = convert_and_compare(intquant(x.shape, scale, 0, 8, 1, 0), {"x": x})
    assert "QuantizeLinear" not in op_types(result.model)


def test_negative_scale_is_emulated():
    x = tie_inputs(0.2, 0, -128, 127)
    result = convert_and_compare(intquant(x.shape, -0.2, 0, 8, 1, 0), {"x": x})
    assert "QuantizeLinear" not in op_types(result.model)


def test_run_time_scale_zero_point_and_bit_width_are_emulated():
    x = RNG.uniform(-4, 4, (4, 6)).astype(np.float32)
    feeds = {"x": x, "scale": np.float32(0.3), "zeropt": np.float32(2.0), "bits": np.float32(5)}
    model = intquant(x.shape, feeds["scale"], feeds["zeropt"], feeds["bits"], 1, 1, dynamic=("scale", "zeropt", "bits"))
    result = convert_and_compare(model, feeds)
    assert "Pow" in op_types(result.model)
    for bits in (1, 3, 8, 16, 24):  # the same converted model with other run-time bit widths
        feeds2 = dict(feeds, bits=np.float32(bits))
        again = intquant(x.shape, feeds["scale"], feeds["zeropt"], feeds2["bits"], 1, 1,
                         dynamic=("scale", "zeropt", "bits"))
        ref = execute(again, feeds2)
        assert_same(run_onnxruntime(result.model, feeds2)["y"], ref["y"])


def test_int64_zero_point_and_bit_width_inputs():
    """QKeras-converted files store zero-point and bit width as int64 scalars."""
    x = tie_inputs(0.03125, 0, -32, 31)
    model = qonnx_model("Quant", x.shape, {"scale": np.float32(0.03125), "zeropt": np.int64(0), "bits": np.int64(6)},
                        dict(signed=1, narrow=0, rounding_mode="ROUND"), qonnx_opset=1, opset=9)
    result = convert_and_compare(model, {"x": x})
    assert op_types(result.model) == ["QuantizeLinear", "Clip", "DequantizeLinear"]
    assert dict(result.model.opset_imports)[""] == 12  # Clip on int8 needs opset 12


# -- IntQuant: constants (weights, biases) ---------------------------------------------------


@pytest.mark.parametrize("bits,signed,narrow,dtype", [
    (8, 1, 1, np.int8), (4, 1, 1, np.int8), (3, 0, 0, np.uint8), (8, 0, 0, np.uint8), (1, 1, 0, np.int8),
    (16, 1, 0, np.int32), (32, 1, 0, np.int32),
])
def test_constant_weights_become_integer_initializer_and_dq(bits, signed, narrow, dtype):
    w = RNG.normal(0, 1, (8, 6)).astype(np.float32)
    w[0, :4] = [0.5 * 0.05, -1.5 * 0.05, 1e9, -1e9]
    scale = np.float32(0.05)
    model = _with_constant_x(intquant(w.shape, scale, 0, bits, signed, narrow), w)
    want = execute(model, {})["y"]
    result = to_qcdq(model)
    conv = result.model
    assert op_types(conv) == ["DequantizeLinear"]
    dq = node_of(conv, "DequantizeLinear")
    codes = dq.inputs[0].const_value.numpy()
    assert codes.dtype == dtype
    lo, hi = int_range(bits, signed, narrow)
    assert codes.min() >= lo and codes.max() <= hi
    assert "x" not in conv.graph.initializers  # the float weight is gone
    assert_same(run_onnxruntime(conv, {})["y"], want)


def _with_constant_x(model, w, as_graph_input=False):
    """The quantizer's input 'x' becomes the initializer ``w`` (a weight), still a graph input if asked."""
    proto = ir.to_proto(model)
    if not as_graph_input:
        proto.graph.input.pop(0)
    proto.graph.initializer.append(numpy_helper.from_array(w, "x"))
    return ir.from_proto(proto)


def _weight_model(w, scale, zp, bits, signed, narrow, mode="ROUND", as_graph_input=False):
    return _with_constant_x(intquant(w.shape, scale, zp, bits, signed, narrow, mode), w, as_graph_input)


@pytest.mark.parametrize("mode", MODES)
def test_constant_weights_any_rounding_mode(mode):
    scale = np.float32([0.1, 0.2, 0.05]).reshape(3, 1)
    w = (np.arange(-12, 12, dtype=np.float32).reshape(3, 8) * np.float32(0.5) * scale).astype(np.float32)
    model = _weight_model(w, scale, 0, 4, 1, 0, mode)
    want = execute(model, {})["y"]
    result = to_qcdq(model)
    assert op_types(result.model) == ["DequantizeLinear"]
    assert node_of(result.model, "DequantizeLinear").attributes["axis"].value == 0
    assert_same(run_onnxruntime(result.model, {})["y"], want)


def test_constant_weights_int4_at_opset_21():
    w = RNG.normal(0, 1, (5, 7)).astype(np.float32)  # odd element count: int4 packing
    model = _weight_model(w, np.float32(0.2), 0, 4, 1, 1)
    want = execute(model, {})["y"]
    result = to_qcdq(model, opset=21)
    dq = node_of(result.model, "DequantizeLinear")
    assert dq.inputs[0].const_value.dtype == ir.DataType.INT4
    assert_same(run_onnxruntime(result.model, {})["y"], want)


def test_constant_weights_with_zero_point_and_graph_input_listing():
    """Brevitas lists initializers as graph inputs too: the replaced float weight leaves both."""
    w = RNG.uniform(0, 0.5, (4, 4)).astype(np.float32)
    scale = np.float32([0.01, 0.02, 0.03, 0.04]).reshape(4, 1)
    zp = np.float32([3, 100, 127, 0]).reshape(4, 1)
    model = _weight_model(w, scale, zp, 8, 0, 0, as_graph_input=True)
    want = execute(model, {})["y"]
    result = to_qcdq(model)
    assert [v.name for v in result.model.graph.inputs] == []
    dq = node_of(result.model, "DequantizeLinear")
    assert dq.inputs[2].const_value.numpy().tolist() == [3, 100, 127, 0]
    assert_same(run_onnxruntime(result.model, {})["y"], want)


def test_constant_weights_non_integer_zero_point_fold():
    w = RNG.uniform(-1, 1, (4, 4)).astype(np.float32)
    model = _weight_model(w, np.float32(0.1), np.float32(0.5), 8, 1, 0)
    want = execute(model, {})["y"]
    result = to_qcdq(model)
    assert op_types(result.model) == ["Identity"]  # the folded initializer feeds the graph output
    assert_same(run_onnxruntime(result.model, {})["y"], want)


def test_keep_float_weights_emits_qcdq_on_float_initializer():
    w = RNG.normal(0, 1, (8, 6)).astype(np.float32)
    model = _weight_model(w, np.float32(0.3), 0, 3, 1, 1)
    want = execute(model, {})["y"]
    result = to_qcdq(model, keep_float_weights=True)
    assert op_types(result.model) == ["QuantizeLinear", "Clip", "DequantizeLinear"]
    q = node_of(result.model, "QuantizeLinear")
    assert q.inputs[0].name == "x" and q.inputs[0].const_value.dtype == ir.DataType.FLOAT
    assert_same(run_onnxruntime(result.model, {})["y"], want)


def test_keep_float_weights_wide_bias_still_int32():
    b = RNG.normal(0, 1, (10,)).astype(np.float32)
    model = _weight_model(b, np.float32(1e-5), 0, 32, 1, 0)
    want = execute(model, {})["y"]
    result = to_qcdq(model, keep_float_weights=True)
    dq = node_of(result.model, "DequantizeLinear")
    assert dq.inputs[0].const_value.dtype == ir.DataType.INT32
    assert_same(run_onnxruntime(result.model, {})["y"], want)


def test_quantized_weight_shrinks_model():
    w = RNG.normal(0, 1, (64, 64)).astype(np.float32)
    model = _weight_model(w, np.float32(0.02), 0, 8, 1, 1)
    before = len(ir.to_proto(model).SerializeToString())
    after = len(ir.to_proto(to_qcdq(model).model).SerializeToString())
    assert after < before / 3.5


# -- BipolarQuant ------------------------------------------------------------------------------


def bipolar(x_shape, scale, **kw):
    return qonnx_model("BipolarQuant", x_shape, {"scale": np.asarray(scale, np.float32)}, **kw)


@pytest.mark.parametrize("scale", [np.float32(1.0), np.float32(0.1), np.float32([0.5, 2.0, 0.25]).reshape(1, 3)])
def test_bipolar_activation_is_where(scale):
    x = np.float32([[0.0, -0.0, 1e-30], [-1e-30, 5.0, -5.0], [np.inf, -np.inf, 0.5], [-0.5, 3e38, -3e38]])
    result = convert_and_compare(bipolar(x.shape, scale), {"x": x})
    assert op_types(result.model) == ["GreaterOrEqual", "Where"]


def test_bipolar_run_time_scale():
    x = RNG.normal(0, 1, (3, 4)).astype(np.float32)
    x[0, 0] = 0.0
    feeds = {"x": x, "scale": np.float32(0.7)}
    result = convert_and_compare(bipolar(x.shape, feeds["scale"], dynamic=("scale",)), feeds)
    assert "Mul" in op_types(result.model)


@pytest.mark.parametrize("opset,dtype", [(None, ir.DataType.INT8), (21, ir.DataType.INT4)])
def test_bipolar_weights_become_integer_initializer(opset, dtype):
    w = RNG.normal(0, 1, (4, 5)).astype(np.float32)
    w[0, 0] = 0.0
    model = _with_constant_x(bipolar(w.shape, np.float32([0.1, 0.2, 0.3, 0.4]).reshape(4, 1)), w)
    want = execute(model, {})["y"]
    result = to_qcdq(model, opset=opset)
    dq = node_of(result.model, "DequantizeLinear")
    assert dq.inputs[0].const_value.dtype == dtype
    assert_same(run_onnxruntime(result.model, {})["y"], want)


# -- Trunc ---------------------------------------------------------------------------------------


def int_grid(scale, lo, hi, zp=0.0, shape=(4, -1)):
    v = np.arange(lo, hi + 1, dtype=np.float32)
    x = ((v - np.float32(zp)) * np.float32(scale)).astype(np.float32)
    n = 4 * ((x.size + 3) // 4)
    return np.resize(x, n).reshape(shape)


@pytest.mark.parametrize("mode", ["FLOOR", "ROUND", "CEIL", "HALF_UP", "DOWN"])
@pytest.mark.parametrize("zp", [0.0, 3.0])
def test_trunc_v1(mode, zp):
    x = int_grid(0.375, -128, 127, zp)
    x = np.concatenate([x, x * np.float32(1.0000001)], axis=1)  # float noise around the grid
    model = qonnx_model("Trunc", x.shape, {"scale": np.float32(0.375), "zeropt": np.float32(zp),
                                            "in_bits": np.float32(8), "out_bits": np.float32(5)},
                        dict(rounding_mode=mode), qonnx_opset=1)
    result = convert_and_compare(model, {"x": x})
    assert "QuantizeLinear" not in op_types(result.model)


def test_trunc_v1_run_time_bit_widths():
    x = int_grid(0.5, -128, 127)
    feeds = {"x": x, "in_bits": np.float32(8), "out_bits": np.float32(3)}
    model = qonnx_model("Trunc", x.shape, {"scale": np.float32(0.5), "zeropt": np.float32(0),
                                            "in_bits": feeds["in_bits"], "out_bits": feeds["out_bits"]},
                        dict(rounding_mode="FLOOR"), qonnx_opset=1, dynamic=("in_bits", "out_bits"))
    result = convert_and_compare(model, feeds)
    assert "Pow" in op_types(result.model)


@pytest.mark.parametrize("mode", ["FLOOR", "floor", "ROUND", "CEIL"])
@pytest.mark.parametrize("signed,narrow,zp", [(0, 0, 0.0), (1, 0, 0.0), (1, 1, 2.0)])
def test_trunc_v2(mode, signed, narrow, zp):
    scale, out_scale = np.float32(0.0362), np.float32(0.0362 * 4)
    x = int_grid(scale, -300 if signed else 0, 600, zp)
    model = qonnx_model("Trunc", x.shape, {"scale": scale, "zeropt": np.float32(zp), "in_bits": np.float32(10),
                                            "out_scale": out_scale, "out_bits": np.float32(6)},
                        dict(rounding_mode=mode, signed=signed, narrow=narrow), qonnx_opset=2)
    result = convert_and_compare(model, {"x": x})
    ops = op_types(result.model)
    assert "Clip" in ops
    # the rounding is Trunc's own (Floor/Ceil/Round) before any QuantizeLinear; a QuantizeLinear, when there is
    # one (zero point 0), only re-quantizes integers times out_scale at out_scale, which rounds nothing
    quantizers = [n for n in result.model.graph if n.op_type == "QuantizeLinear"]
    if zp == 0:
        (q,) = quantizers
        assert q.inputs[1].const_value.numpy().item() == np.float32(out_scale)
        assert ops.index({"FLOOR": "Floor", "floor": "Floor", "ROUND": "Round", "CEIL": "Ceil"}[mode],
                         ops.index("Clip")) < ops.index("QuantizeLinear")
    else:
        assert quantizers == []


def test_trunc_v2_floors_where_quantizelinear_would_round():
    """Brevitas' QCDQ export of TruncAvgPool rounds; the lowering must floor (values x.5..x.75)."""
    scale = np.float32(1.0)
    x = np.float32([[6, 7, 10, 11, -6, -7]])
    model = qonnx_model("Trunc", x.shape, {"scale": scale, "zeropt": np.float32(0), "in_bits": np.float32(8),
                                            "out_scale": np.float32(4), "out_bits": np.float32(4)},
                        dict(rounding_mode="FLOOR", signed=1, narrow=0), qonnx_opset=2)
    result = convert_and_compare(model, {"x": x})
    got = run_onnxruntime(result.model, {"x": x})["y"]
    assert got.tolist() == [[4, 4, 8, 8, -8, -8]]


def test_trunc_v2_run_time_out_scale_is_declined():
    x = int_grid(0.5, 0, 100)
    model = qonnx_model("Trunc", x.shape, {"scale": np.float32(0.5), "zeropt": np.float32(0), "in_bits": np.float32(8),
                                            "out_scale": np.float32(2.0), "out_bits": np.float32(4)},
                        dict(rounding_mode="FLOOR"), qonnx_opset=2, dynamic=("out_scale",))
    with pytest.raises(ConversionError, match="out_scale must be constant"):
        to_qcdq(model)


# -- FloatQuant ----------------------------------------------------------------------------------

FP8 = {
    "e4m3": (4, 3, 7, 448.0, dict(has_inf=0, has_nan=1)),
    "e5m2": (5, 2, 15, 57344.0, dict(has_inf=1, has_nan=1)),
}


def fp8_inputs(dtype, scale):
    """Every finite float8 value, midpoints (ties), their neighbours, overflow and infinities."""
    import ml_dtypes

    grid = np.arange(256, dtype=np.uint8).view(dtype).astype(np.float32)
    grid = np.unique(grid[np.isfinite(grid)])
    mids = ((grid[1:].astype(np.float64) + grid[:-1]) / 2).astype(np.float32)
    top = float(grid.max())
    base = np.concatenate([grid, mids, np.nextafter(mids, np.float32(np.inf)), np.nextafter(mids, np.float32(-np.inf)),
                           np.float32([top * 1.03, -top * 1.03, top * 1.1, top * 4, 1e30, -1e30, np.inf, -np.inf,
                                       1e-30, -1e-30])])
    del ml_dtypes
    return (base.astype(np.float32) * np.float32(scale)).astype(np.float32).reshape(1, -1)


def floatquant(x_shape, scale, e, m, bias, max_val, **attrs):
    params = {"scale": np.asarray(scale, np.float32), "e": np.float32(e), "m": np.float32(m), "bias": np.float32(bias),
              "max_val": None if max_val is None else np.asarray(max_val, np.float32)}
    return qonnx_model("FloatQuant", x_shape, params, attrs, qonnx_opset=1)


@pytest.mark.parametrize("fmt", sorted(FP8))
@pytest.mark.parametrize("saturation", [1, 0])
@pytest.mark.parametrize("scale", [1.0, 0.0068])
def test_floatquant_ocp_fp8_is_float8_qdq(fmt, saturation, scale):
    import ml_dtypes

    e, m, bias, max_val, flags = FP8[fmt]
    dtype = ml_dtypes.float8_e4m3fn if fmt == "e4m3" else ml_dtypes.float8_e5m2
    x = fp8_inputs(dtype, scale)
    model = floatquant(x.shape, scale, e, m, bias, max_val, saturation=saturation, rounding_mode="ROUND", **flags)
    result = convert_and_compare(model, {"x": x})
    if not saturation:
        # onnxruntime's saturate=0 float8 conversion is not ONNX's (+inf -> 448 in E4M3FN,
        # values rounding to 65536 -> NaN in E5M2): non-saturating nodes are emulated
        assert "QuantizeLinear" not in op_types(result.model)
        return
    assert op_types(result.model) == ["QuantizeLinear", "DequantizeLinear"]
    q = node_of(result.model, "QuantizeLinear")
    assert q.attributes["saturate"].value == saturation
    assert container_of(result.model) == (ir.DataType.FLOAT8E4M3FN if fmt == "e4m3" else ir.DataType.FLOAT8E5M2)


def test_floatquant_fp8_per_channel_scale():
    import ml_dtypes

    e, m, bias, max_val, flags = FP8["e4m3"]
    x = np.concatenate([fp8_inputs(ml_dtypes.float8_e4m3fn, 1.0)] * 3)
    scale = np.float32([1.0, 0.01, 3.0]).reshape(3, 1)
    x = (x * scale).astype(np.float32)
    result = convert_and_compare(floatquant(x.shape, scale, e, m, bias, max_val, **flags), {"x": x})
    assert node_of(result.model, "QuantizeLinear").attributes["axis"].value == 0


@pytest.mark.parametrize("case", [
    dict(e=4, m=3, bias=7, max_val=448.0, rounding_mode="FLOOR", has_nan=1),
    dict(e=5, m=2, bias=15, max_val=57344.0, rounding_mode="CEIL", has_inf=1),
    dict(e=3, m=2, bias=3, max_val=None, rounding_mode="ROUND"),
    dict(e=3, m=2, bias=3, max_val=20.0, rounding_mode="ROUND", saturation=0, has_inf=1),
    dict(e=2, m=1, bias=1, max_val=None, rounding_mode="ROUND", saturation=0, has_nan=1),
    dict(e=4, m=3, bias=7, max_val=None, rounding_mode="ROUND"),  # max 480: not FLOAT8E4M3FN
    dict(e=5, m=4, bias=11, max_val=None, rounding_mode="FLOOR"),
    dict(e=4, m=3, bias=7, max_val=448.0, rounding_mode="ROUND", saturation=0, has_inf=1, has_nan=1),
])
def test_floatquant_other_formats_are_emulated_exactly(case):
    import ml_dtypes

    case = dict(case)
    e, m, bias, max_val = case.pop("e"), case.pop("m"), case.pop("bias"), case.pop("max_val")
    x = np.concatenate([fp8_inputs(ml_dtypes.float8_e4m3fn, 0.37)[0], fp8_inputs(ml_dtypes.float8_e5m2, 0.011)[0],
                        np.float32([2.0**-140, -(2.0**-149), 3.1e-39, 1.0])]).reshape(2, -1)
    model = floatquant(x.shape, np.float32(0.37), e, m, bias, max_val, **case)
    result = convert_and_compare(model, {"x": x})
    assert "QuantizeLinear" not in op_types(result.model) and "Log" not in op_types(result.model)


def test_floatquant_per_channel_max_val_is_emulated():
    x = RNG.normal(0, 100, (3, 40)).astype(np.float32)
    model = floatquant(x.shape, np.float32(0.5), 4, 3, 7, np.float32([448, 100, 20]).reshape(3, 1), has_nan=1)
    result = convert_and_compare(model, {"x": x})
    assert {"Max", "Min"} <= set(op_types(result.model))


def test_floatquant_run_time_scale_is_emulated():
    x = RNG.normal(0, 30, (3, 7)).astype(np.float32)
    feeds = {"x": x, "scale": np.float32(0.21)}
    model = floatquant(x.shape, feeds["scale"], 4, 3, 7, 448.0, has_nan=1)
    proto = ir.to_proto(model)
    init = [t for t in proto.graph.initializer if t.name == "scale"][0]
    proto.graph.initializer.remove(init)
    proto.graph.input.append(helper.make_tensor_value_info("scale", TensorProto.FLOAT, []))
    convert_and_compare(ir.from_proto(proto), feeds)


@pytest.mark.parametrize("fmt,container", [
    ((4, 3, 7, 448.0), ir.DataType.FLOAT8E4M3FN), ((5, 2, 15, 57344.0), ir.DataType.FLOAT8E5M2),
    ((3, 2, 3, None), ir.DataType.FLOAT8E4M3FN),  # E3M2 values are E4M3FN values
])
def test_floatquant_weights_become_float8_initializer(fmt, container):
    e, m, bias, max_val = fmt
    w = RNG.normal(0, 3, (6, 5)).astype(np.float32)
    scale = np.float32([0.5, 1, 2, 0.1, 0.2, 4]).reshape(6, 1)
    model = _with_constant_x(floatquant(w.shape, scale, e, m, bias, max_val, has_nan=1), w)
    want = execute(model, {})["y"]
    result = to_qcdq(model)
    assert op_types(result.model) == ["DequantizeLinear"]
    assert node_of(result.model, "DequantizeLinear").inputs[0].const_value.dtype == container
    assert_same(run_onnxruntime(result.model, {})["y"], want)


def test_floatquant_run_time_exponent_width_is_declined():
    x = RNG.normal(0, 1, (2, 3)).astype(np.float32)
    model = floatquant(x.shape, 1.0, 4, 3, 7, 448.0)
    proto = ir.to_proto(model)
    init = [t for t in proto.graph.initializer if t.name == "e"][0]
    proto.graph.initializer.remove(init)
    proto.graph.input.append(helper.make_tensor_value_info("e", TensorProto.FLOAT, []))
    model = ir.from_proto(proto)
    with pytest.raises(ConversionError, match="must be constant"):
        to_qcdq(model)
    result = to_qcdq(model, allow_partial=True)
    assert [(u.node, u.op) for u in result.unconverted] == [("quantizer", "FloatQuant")]
    assert QONNX in result.model.opset_imports


# -- the codes helpers agree with execute -----------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_int_codes_match_execute(mode):
    x = RNG.normal(0, 3, (4, 9)).astype(np.float32)
    scale, zp, bits = np.float32(0.3), np.float32(3), np.asarray(5)
    ctx = NodeContext("n", "IntQuant", QONNX, 2, IntQuant.resolve_attributes(
        dict(signed=1, narrow=0, rounding_mode=mode), "n"))
    lo, hi = bounds_in_dtype(*int_bounds(True, False, bits), np.dtype(np.float32))
    codes = _int_codes(x, scale, zp, lo, hi, mode)
    assert_same((codes - zp) * scale, IntQuant.execute(ctx, x, scale, zp, bits))


def test_float_codes_match_execute():
    x = RNG.normal(0, 300, (4, 9)).astype(np.float32)
    e, m, b = np.asarray(4), np.asarray(3), np.asarray(7)
    attrs = FloatQuant.resolve_attributes(dict(has_nan=1), "n")
    ctx = NodeContext("n", "FloatQuant", QONNX, 1, attrs)
    limit = np.minimum(format_max(e, m, b), 448.0)
    codes = _float_codes(x, np.float32(0.5), e, m, b, limit, attrs)
    assert_same(codes * np.float32(0.5), FloatQuant.execute(ctx, x, np.float32(0.5), e, m, b, np.float32(448.0)))


# -- driver: opsets, partial conversion, pass-through, structure ----------------------------------


def test_requested_opset_21_upgrades_other_ops():
    x = tie_inputs(0.1, 0, -128, 127)
    relu = helper.make_node("Relu", ["y"], ["z"], name="relu")
    model = intquant(x.shape, 0.1, 0, 8, 1, 0, extra_nodes=[relu], output="z")
    want = execute(model, {"x": x})["z"]
    result = to_qcdq(model, opset=21)
    assert dict(result.model.opset_imports) == {"": 21}
    assert result.model.ir_version >= 10
    assert_same(run_onnxruntime(result.model, {"x": x})["z"], want)
    assert "opset 21" in result.notes[0]


def test_requested_opset_too_low_declines():
    x = tie_inputs(0.1, 0, -8, 7)
    model = intquant(x.shape, 0.1, 0, 4, 1, 0, opset=9)
    with pytest.raises(ConversionError, match="IntQuant|Quant"):
        to_qcdq(model, opset=10)
    # nothing was changed
    assert [n.op_type for n in model.graph] == ["Quant"]
    result = to_qcdq(model, opset=10, allow_partial=True)
    assert len(result.unconverted) == 1 and "opset" in result.unconverted[0].reason
    assert QONNX in result.model.opset_imports


def test_opset_below_the_models_is_refused_when_the_converter_cannot_go_down():
    x = tie_inputs(0.1, 0, -128, 127)
    relu = helper.make_node("Relu", ["y"], ["z"], name="relu")
    model = intquant(x.shape, 0.1, 0, 8, 1, 0, extra_nodes=[relu], output="z")
    before = ir.to_proto(model).SerializeToString()
    with pytest.raises(BadInputError, match="version converter"):
        to_qcdq(model, opset=13)
    assert ir.to_proto(model).SerializeToString() == before


def test_old_opset_model_is_raised_to_what_the_form_needs():
    scale = np.float32([0.5, 0.25]).reshape(2, 1)
    x = RNG.uniform(-10, 10, (2, 6)).astype(np.float32)
    result = convert_and_compare(intquant(x.shape, scale, 0, 8, 1, 0, opset=9), {"x": x})
    assert dict(result.model.opset_imports)[""] == 13  # per-axis Q/DQ


def test_dynamic_quantize_linear_passes_through():
    """The corpus has no QONNX form of dynamic quantization; a standard DynamicQuantizeLinear
    in the input model is left exactly as it is."""
    x = RNG.uniform(-3, 3, (4, 6)).astype(np.float32)
    dql = helper.make_node("DynamicQuantizeLinear", ["y"], ["q", "s", "zp"], name="dql")
    dq = helper.make_node("DequantizeLinear", ["q", "s", "zp"], ["z"], name="dq")
    model = intquant(x.shape, 0.05, 0, 8, 1, 0, extra_nodes=[dql, dq], output="z")
    want = execute(model, {"x": x})["z"]
    result = to_qcdq(model)
    assert op_types(result.model)[-2:] == ["DynamicQuantizeLinear", "DequantizeLinear"]
    assert_same(run_onnxruntime(result.model, {"x": x})["z"], want)


def test_model_without_quantizers_is_unchanged():
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 6])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 6])])
    model = ir.from_proto(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))
    before = ir.to_proto(model).SerializeToString()
    result = to_qcdq(model)
    assert result.unconverted == [] and ir.to_proto(result.model).SerializeToString() == before


def test_output_names_and_consumers_are_kept():
    x = tie_inputs(0.1, 0, -128, 127)
    relu = helper.make_node("Relu", ["y"], ["z"], name="relu")
    model = intquant(x.shape, 0.1, 0, 8, 1, 0, extra_nodes=[relu], output="z")
    proto = ir.to_proto(model)
    proto.graph.output.append(helper.make_tensor_value_info("y", TensorProto.FLOAT, None))
    model = ir.from_proto(proto)
    result = convert_and_compare(model, {"x": x})
    dq = node_of(result.model, "DequantizeLinear")
    assert dq.outputs[0].name == "y"
    assert node_of(result.model, "Relu").inputs[0] is dq.outputs[0]


def test_shared_constants_are_deduplicated():
    x = tie_inputs(0.1, 0, -8, 7)
    second = helper.make_node("Quant", ["y", "scale", "zeropt", "bits"], ["z"], domain=QONNX, name="second",
                              signed=1, narrow=0, rounding_mode="ROUND")
    model = intquant(x.shape, 0.1, 0, 4, 1, 0, extra_nodes=[second], output="z")
    result = convert_and_compare(model, {"x": x})
    clips = [n for n in result.model.graph if n.op_type == "Clip"]
    assert len(clips) == 2 and clips[0].inputs[1] is clips[1].inputs[1]
    assert "scale" not in result.model.graph.initializers  # the QONNX parameters are gone


@pytest.mark.parametrize("layout,rows", [("NCHW", 3), ("NHWC", 4), ("NCHW", 1)])
def test_multithreshold_is_lowered(layout, rows):
    x = RNG.uniform(-2, 2, (2, 3, 4, 4)).astype(np.float32)
    thresholds = np.sort(RNG.uniform(-1.5, 1.5, (rows, 5)).astype(np.float32), axis=1)
    x[0, 0, 0, :] = thresholds[0, 2]  # exactly on a threshold: reached
    node = helper.make_node("MultiThreshold", ["x", "t"], ["y"], domain=QONNX, name="mt", out_scale=2.0,
                            out_bias=-5.0, out_dtype="INT4", data_layout=layout)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x.shape))],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(thresholds, "t")])
    model = ir.from_proto(helper.make_model(graph, opset_imports=STD17_QONNX1))
    result = convert_and_compare(model, {"x": x})
    assert "ReduceSum" in op_types(result.model)


def test_unknown_qonnx_op_is_reported():
    node = helper.make_node("NotAnOp", ["x"], ["y"], domain=QONNX, name="mystery")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    model = ir.from_proto(helper.make_model(graph, opset_imports=STD17_QONNX1))
    with pytest.raises(ConversionError, match="mystery"):
        to_qcdq(model)


def test_granularity_from_shapes():
    assert L.granularity([(1, 1)], (4, 8)).kind == "tensor"
    g = L.granularity([(4, 1)], (4, 8))
    assert (g.kind, g.axis) == ("axis", 0)
    g = L.granularity([(1, 2)], (4, 8))
    assert (g.kind, g.axis, g.block_size, g.block_shape) == ("block", 1, 4, (4, 2))
    assert isinstance(L.granularity([(1, 3)], (4, 8)), str)
    assert isinstance(L.granularity([(4, 8)], (4, 8)), str)
    g = L.granularity([(8,)], None)
    assert (g.kind, g.axis) == ("axis", -1)


# -- property test --------------------------------------------------------------------------------


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    bits=st.integers(1, 16),
    signed=st.booleans(),
    narrow=st.booleans(),
    mode=st.sampled_from(MODES),
    scale_exp=st.floats(-12, 4),
    scale_mant=st.floats(1.0, 2.0),
    zp_kind=st.sampled_from(["zero", "int", "frac"]),
    per_channel=st.sampled_from([None, 0, 1, 2]),
    opset=st.sampled_from([None, 13, 21]),
    seed=st.integers(0, 2**31 - 1),
)
def test_property_conversion_matches_executor(bits, signed, narrow, mode, scale_exp, scale_mant, zp_kind, per_channel,
                                              opset, seed):
    rng = np.random.default_rng(seed)
    lo, hi = int_range(bits, signed, narrow)
    shape = (3, 4, 5)
    pshape = [1, 1, 1]
    if per_channel is not None:
        pshape[per_channel] = shape[per_channel]
    base = np.float32(scale_mant * 2.0**scale_exp)
    scale = (base * rng.uniform(0.5, 2.0, pshape)).astype(np.float32)
    if zp_kind == "zero":
        zp = np.zeros(pshape, np.float32)
    elif zp_kind == "int":
        zp = rng.integers(lo, hi + 1, pshape).astype(np.float32)
    else:
        zp = (rng.integers(lo, hi + 1, pshape) + rng.uniform(-0.5, 0.5, pshape)).astype(np.float32)
    span = min(hi - lo, 200)
    k = rng.integers(lo - 2, lo + span + 3, shape).astype(np.float32)
    frac = rng.choice(np.float32([0.5, 0.0, 0.25, 0.75, 0.4999999, 0.5000001]), shape)
    x = ((k + frac - zp) * scale).astype(np.float32)
    x.flat[0], x.flat[1] = np.float32(lo - 5) * scale.flat[0], np.float32(hi + 5) * scale.flat[0]
    model = intquant(shape, scale, zp, bits, signed, narrow, mode)
    convert_and_compare(model, {"x": x}, opset=opset)


def test_channels_last_model_goes_channels_first_then_matches_its_reference_in_onnxruntime():
    """models/generated/channels_last_ops.onnx: expected outputs from the generator's own transcription
    of the QONNX spec and onnxruntime (models/manifest.toml), not from qonnx_tools."""
    from pathlib import Path

    import onnxruntime as ort

    from qonnx_tools.convert import convert
    from qonnx_tools.domains import CHANNELS_LAST
    from qonnx_tools.model_io import load

    root = Path(__file__).resolve().parents[2] / "models" / "generated"
    model = load(root / "channels_last_ops.onnx")
    result = convert(model, to="qcdq")
    assert result.notes[0].startswith("channels-last ops turned back")
    assert not [n for n in model.graph if n.domain == CHANNELS_LAST or n.domain.startswith("qonnx")]
    reference = np.load(root / "channels_last_ops.npz")
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    proto = ir.serde.serialize_model(model)
    session = ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {"x": reference["input:x"]})
    np.testing.assert_allclose(got, reference["output:y"], rtol=0, atol=1e-6)
