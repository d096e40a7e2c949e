"""to_qonnx ("raise"): standard Q/DQ -> QONNX Quant/FloatQuant.

Handmade graphs check the raised parameters against values written here and the
raised model (our executor) against onnxruntime on the original graph, bit for
bit, on inputs that include rounding ties and out-of-range values. The corpus
tests raise every Brevitas QCDQ export and compare with onnxruntime and with
Brevitas' own QONNX export of the same model.
"""

from __future__ import annotations

import fnmatch

import ml_dtypes
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from qonnx_tools import model_io
from qonnx_tools._ir import ir
from qonnx_tools.constants import constant_array
from qonnx_tools.convert.qonnx_raise import QONNX_OPSET_VERSION, to_qonnx
from qonnx_tools.domains import QONNX
from qonnx_tools.errors import ConversionError
from qonnx_tools.executor import Executor
from qonnx_tools.executor.engine import resolve_kernel
from qonnx_tools.node_context import NodeContext
from qonnx_tools.ops.intquant import qonnx_int_format
from qonnx_tools.runtime import run_onnxruntime
from qonnx_tools.testing import TIE_SENSITIVE, brevitas_models

F = TensorProto.FLOAT
# probes include +-3e38: dividing them by a scale < 1 overflows to inf on purpose
pytestmark = pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
QOPS = ("Quant", "IntQuant", "FloatQuant")


# ---------------------------------------------------------------------------------------------
# helpers


def make_model(nodes, inputs, outputs, inits=(), opset=13):
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info(n, t, s) for n, t, s in inputs],
        [helper.make_tensor_value_info(n, t, s) for n, t, s in outputs],
        initializer=[numpy_helper.from_array(np.asarray(a), n) for n, a in inits],
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    proto.ir_version = 10 if opset >= 21 else 8
    onnx.checker.check_model(proto)
    return proto


def to_ir(proto):
    return ir.from_proto(proto)


def raised(proto, **kw):
    model = to_ir(proto)
    result = to_qonnx(model, **kw)
    return model, result


def ort(proto, feeds):
    return run_onnxruntime(to_ir(proto), feeds)


def qnodes(model):
    return [n for n in model.graph if n.op_type in QOPS]


def std_qdq(model):
    return [n.op_type for n in model.graph if n.op_type in ("QuantizeLinear", "DequantizeLinear", "Clip")]


def params(node):
    """Constant inputs and attributes of a raised node, as plain values."""
    vals = [constant_array(v) for v in node.inputs[1:]]
    attrs = {k: a.value for k, a in node.attributes.items()}
    if node.op_type == "FloatQuant":
        keys = ("scale", "exponent_bitwidth", "mantissa_bitwidth", "exponent_bias", "max_val")
    else:
        keys = ("scale", "zeropt", "bitwidth")
    return dict(zip(keys, vals)) | attrs


def assert_params(node, *, scale, zeropt, bits, signed, narrow):
    p = params(node)
    assert node.domain == QONNX and node.op_type == "Quant"
    np.testing.assert_array_equal(p["scale"], np.asarray(scale, dtype=np.float32))
    assert p["scale"].shape == np.shape(scale)
    np.testing.assert_array_equal(p["zeropt"], np.asarray(zeropt, dtype=np.float32))
    assert p["zeropt"].dtype == np.float32 and p["zeropt"].shape == np.shape(zeropt)
    assert p["bitwidth"].dtype == np.float32 and float(p["bitwidth"]) == bits
    assert (p["signed"], p["narrow"], p["rounding_mode"]) == (int(signed), int(narrow), "ROUND")


def probe(scale, lo, hi, zp=0, shape=None, seed=0):
    """Inputs around every step of [lo, hi]: exact ties, grid points, far out of range, random."""
    lo, hi, zp = int(lo), int(hi), int(zp)
    k = np.arange(lo - 3, hi + 4, dtype=np.float64) - zp
    values = np.concatenate([
        (k + 0.5) * scale, (k - 0.5) * scale, k * scale, k * scale * (1 + 1e-7),
        [1e4, -1e4, 3e38, -3e38, 0.0, -0.0],
        np.random.default_rng(seed).uniform((lo - zp - 6) * scale, (hi - zp + 6) * scale, 500),
    ]).astype(np.float32)
    if shape is not None:
        n = int(np.prod(shape))
        values = np.resize(values, n).reshape(shape)
    return values


def assert_same_as_ort(proto, feeds, **kw):
    """Raise ``proto``, run the result with our executor and the original in onnxruntime: identical."""
    expected = ort(proto, feeds)
    model, result = raised(proto, **kw)
    got = Executor(model).run(feeds)
    assert set(got) == set(expected)
    for name in expected:
        assert got[name].dtype == expected[name].dtype
        np.testing.assert_array_equal(got[name], expected[name], err_msg=name)
    return model, result


def qdq_act(container, scale, zp, *, clip=None, opset=13, axis=None, shape=(1, 600), q_attrs=None):
    """x -> QuantizeLinear -> [Clip] -> DequantizeLinear -> y."""
    inits = [("s", np.asarray(scale, dtype=np.float32))]
    q_in = ["x", "s"]
    if zp is not None:
        inits.append(("zp", np.asarray(zp, dtype=container)))
        q_in.append("zp")
    attrs = {} if axis is None else {"axis": axis}
    nodes = [helper.make_node("QuantizeLinear", q_in, ["q"], name="quant", **attrs, **(q_attrs or {}))]
    last = "q"
    if clip is not None:
        inits += [("lo", np.asarray(clip[0], dtype=container)), ("hi", np.asarray(clip[1], dtype=container))]
        nodes.append(helper.make_node("Clip", ["q", "lo", "hi"], ["c"], name="clip"))
        last = "c"
    nodes.append(helper.make_node("DequantizeLinear", [last] + q_in[1:], ["y"], name="act/DequantizeLinear", **attrs))
    return make_model(nodes, [("x", F, list(shape))], [("y", F, list(shape))], inits, opset)


# ---------------------------------------------------------------------------------------------
# range -> (bits, signed, narrow)


@pytest.mark.parametrize(
    "lo, hi, expected",
    [
        ((0), 7, (3, False, False)),
        (-127, 127, (8, True, True)),
        (-128, 127, (8, True, False)),
        (-4, 3, (3, True, False)),
        (-8, 7, (4, True, False)),
        (-7, 7, (4, True, True)),
        (0, 255, (8, False, False)),
        (0, 254, (8, False, True)),
        (0, 1, (1, False, False)),
        (-1, 0, (1, True, False)),
        (-1, 1, (2, True, True)),
        (-32768, 32767, (16, True, False)),
        (-(2**31), 2**31 - 1, (32, True, False)),
        (-3, 5, None),
        (1, 7, None),
        (0, 5, None),
        (3, 3, None),
        (-5, 3, None),
    ],
)
def test_qonnx_int_format(lo, hi, expected):
    assert qonnx_int_format(lo, hi) == expected


# ---------------------------------------------------------------------------------------------
# activations: QuantizeLinear -> [Clip] -> DequantizeLinear


def test_int8_per_tensor_with_ties_and_out_of_range():
    proto = qdq_act(np.int8, 0.0625, 4)
    x = probe(0.0625, -128, 127, zp=4, shape=(1, 600))
    model, result = assert_same_as_ort(proto, {"x": x})
    (node,) = qnodes(model)
    assert_params(node, scale=0.0625, zeropt=4.0, bits=8, signed=True, narrow=False)
    assert std_qdq(model) == [] and result.unconverted == []
    assert node.name == "act/Quant" and node.outputs[0].name == "y" and node.inputs[0].name == "x"
    # nothing of the old chain is left
    assert set(model.graph.initializers) == {"act/Quant_scale", "act/Quant_zeropt", "act/Quant_bitwidth"}


def test_uint8_non_power_of_two_scale():
    scale = np.float32(0.0173)
    proto = qdq_act(np.uint8, scale, 0)
    x = probe(float(scale), 0, 255, shape=(1, 600), seed=3)
    model, result = assert_same_as_ort(proto, {"x": x})
    assert_params(qnodes(model)[0], scale=scale, zeropt=0.0, bits=8, signed=False, narrow=False)
    assert not any("zero-point" in n for n in result.notes)


def test_uint8_asymmetric_non_power_of_two_scale_differs_only_near_ties():
    # x/s + 128 in float32 can round onto/off a halfway point that x/s alone is not/is on
    scale = np.float32(0.0173)
    proto = qdq_act(np.uint8, scale, 128)
    x = probe(float(scale), 0, 255, zp=128, shape=(1, 600), seed=3)
    expected = ort(proto, {"x": x})["y"]
    model, result = raised(proto)
    got = Executor(model).run({"x": x})["y"]
    off = got != expected
    ratio = x.astype(np.float32) / scale
    assert np.all(np.abs(ratio[off] - np.floor(ratio[off]) - 0.5) < 1e-4)
    np.testing.assert_allclose(np.abs(got - expected)[off], scale, rtol=1e-4)  # one step
    assert np.count_nonzero(off) < 0.05 * off.size
    assert_params(qnodes(model)[0], scale=scale, zeropt=128.0, bits=8, signed=False, narrow=False)
    assert any("non-zero zero-point" in n for n in result.notes)


def test_odd_zero_point_differs_only_at_exact_ties():
    # QONNX rounds x/s + zp half to even, QuantizeLinear rounds x/s then adds zp: with an odd
    # zero-point exact halfway inputs land on the other neighbour (documented, noted in the result)
    proto = qdq_act(np.int8, 0.0625, 3)
    x = probe(0.0625, -128, 127, zp=3, shape=(1, 600))
    expected = ort(proto, {"x": x})["y"]
    model, result = raised(proto)
    got = Executor(model).run({"x": x})["y"]
    off = got != expected
    ratio = x.astype(np.float64) / 0.0625
    assert off.any()
    assert np.all(ratio[off] - np.floor(ratio[off]) == 0.5)  # only exact ties
    np.testing.assert_array_equal(np.abs(got - expected)[off], 0.0625)  # by one step
    assert any("odd zero-points" in n for n in result.notes)
    assert_params(qnodes(model)[0], scale=0.0625, zeropt=3.0, bits=8, signed=True, narrow=False)


def test_clip_0_7_on_uint8_is_3_bit_unsigned():
    proto = qdq_act(np.uint8, 0.125, 0, clip=(0, 7))
    model, _ = assert_same_as_ort(proto, {"x": probe(0.125, 0, 7, shape=(1, 600))})
    assert_params(qnodes(model)[0], scale=0.125, zeropt=0.0, bits=3, signed=False, narrow=False)


def test_clip_minus127_127_on_int8_is_narrow_8_bit():
    proto = qdq_act(np.int8, 0.5, 0, clip=(-127, 127))
    model, _ = assert_same_as_ort(proto, {"x": probe(0.5, -128, 127, shape=(1, 600))})
    assert_params(qnodes(model)[0], scale=0.5, zeropt=0.0, bits=8, signed=True, narrow=True)


@pytest.mark.parametrize("clip, bits, narrow", [((-4, 3), 3, False), ((-8, 7), 4, False), ((-7, 7), 4, True)])
def test_signed_clip_ranges(clip, bits, narrow):
    proto = qdq_act(np.int8, 0.25, 0, clip=clip)
    model, _ = assert_same_as_ort(proto, {"x": probe(0.25, *clip, shape=(1, 600))})
    assert_params(qnodes(model)[0], scale=0.25, zeropt=0.0, bits=bits, signed=True, narrow=narrow)


def test_clip_with_zero_point_keeps_stored_range():
    # uint8 zp=8 clipped to [0, 15]: 4-bit unsigned with zero-point 8, i.e. values -8..7 steps
    proto = qdq_act(np.uint8, 0.25, 8, clip=(0, 15))
    model, _ = assert_same_as_ort(proto, {"x": probe(0.25, 0, 15, zp=8, shape=(1, 600))})
    assert_params(qnodes(model)[0], scale=0.25, zeropt=8.0, bits=4, signed=False, narrow=False)


def test_zero_point_omitted_is_uint8_with_zero():
    proto = qdq_act(np.uint8, 0.03125, None)
    model, _ = assert_same_as_ort(proto, {"x": probe(0.03125, 0, 255, shape=(1, 600))})
    assert_params(qnodes(model)[0], scale=0.03125, zeropt=0.0, bits=8, signed=False, narrow=False)


def test_int16_opset21():
    proto = qdq_act(np.int16, 0.001953125, -100, opset=21, shape=(1, 66000))
    x = probe(0.001953125, -32768, 32767, zp=-100, shape=(1, 66000))
    model, _ = assert_same_as_ort(proto, {"x": x})
    assert_params(qnodes(model)[0], scale=0.001953125, zeropt=-100.0, bits=16, signed=True, narrow=False)


def test_uint16_opset21():
    proto = qdq_act(np.uint16, 0.5, 1000, opset=21, shape=(1, 66000))
    model, _ = assert_same_as_ort(proto, {"x": probe(0.5, 0, 65535, zp=1000, shape=(1, 66000))})
    assert_params(qnodes(model)[0], scale=0.5, zeropt=1000.0, bits=16, signed=False, narrow=False)


def test_int4_activation_opset21():
    proto = qdq_act(ml_dtypes.int4, 0.25, -2, opset=21)
    model, _ = assert_same_as_ort(proto, {"x": probe(0.25, -8, 7, zp=-2, shape=(1, 600))})
    assert_params(qnodes(model)[0], scale=0.25, zeropt=-2.0, bits=4, signed=True, narrow=False)


def test_uint4_activation_opset21():
    proto = qdq_act(ml_dtypes.uint4, 0.25, 6, opset=21)
    model, _ = assert_same_as_ort(proto, {"x": probe(0.25, 0, 15, zp=6, shape=(1, 600))})
    assert_params(qnodes(model)[0], scale=0.25, zeropt=6.0, bits=4, signed=False, narrow=False)


def test_per_axis_activation_reshaped_to_rank():
    scale = np.array([0.5, 0.25, 0.125], dtype=np.float32)
    zp = np.array([0, 6, -8], dtype=np.int8)
    proto = qdq_act(np.int8, scale, zp, axis=1, shape=(2, 3, 10, 10))
    x = np.stack([probe(s, -128, 127, zp=z, shape=(2, 10, 10), seed=i) for i, (s, z) in enumerate(zip(scale, zp))], 1)
    model, _ = assert_same_as_ort(proto, {"x": x})
    assert_params(qnodes(model)[0], scale=scale.reshape(1, 3, 1, 1), zeropt=zp.reshape(1, 3, 1, 1).astype(np.float32),
                  bits=8, signed=True, narrow=False)


def test_per_axis_negative_axis():
    scale = np.array([0.5, 0.25, 0.125, 1.0], dtype=np.float32)
    proto = qdq_act(np.int8, scale, np.zeros(4, np.int8), axis=-1, shape=(5, 4))
    x = np.random.default_rng(0).uniform(-200, 200, (5, 4)).astype(np.float32)
    model, _ = assert_same_as_ort(proto, {"x": x})
    assert params(qnodes(model)[0])["scale"].shape == (1, 4)


def test_per_axis_activation_of_unknown_rank_infers_shapes():
    proto = qdq_act(np.int8, np.array([0.5, 0.25], np.float32), np.zeros(2, np.int8), axis=1, shape=(3, 2, 4))
    # hide the rank: an Identity in front of the QuantizeLinear, output shape undeclared
    proto.graph.node[0].input[0] = "xi"
    proto.graph.node.insert(0, helper.make_node("Identity", ["x"], ["xi"]))
    proto.graph.output[0].type.tensor_type.ClearField("shape")
    x = np.random.default_rng(1).uniform(-100, 100, (3, 2, 4)).astype(np.float32)
    model, result = assert_same_as_ort(proto, {"x": x})
    assert params(qnodes(model)[0])["scale"].shape == (1, 2, 1)
    assert any("shapes were inferred" in n for n in result.notes)


# ---------------------------------------------------------------------------------------------
# weights and biases: DequantizeLinear(integer constant) [with Clip]


def test_per_axis_int8_weights_restored_exactly():
    w_int = np.arange(-54, 54, dtype=np.int8).reshape(4, 3, 3, 3) * np.int8(2)
    w_int[0, 0, 0, 0] = -128
    scale = np.array([0.5, 0.0173, 0.125, 3.0], dtype=np.float32)
    zp = np.array([0, 1, -2, 3], dtype=np.int8)
    nodes = [
        helper.make_node("DequantizeLinear", ["w_quantized", "w_scale", "w_zero_point"], ["w"], name="wdq", axis=0),
        helper.make_node("Mul", ["x", "w"], ["y"]),
    ]
    proto = make_model(nodes, [("x", F, [4, 3, 3, 3])], [("y", F, [4, 3, 3, 3]), ("w", F, [4, 3, 3, 3])],
                       [("w_quantized", w_int), ("w_scale", scale), ("w_zero_point", zp)])
    x = np.random.default_rng(0).standard_normal((4, 3, 3, 3)).astype(np.float32)
    model, _ = assert_same_as_ort(proto, {"x": x})
    (node,) = qnodes(model)
    assert_params(node, scale=scale.reshape(4, 1, 1, 1), zeropt=zp.reshape(4, 1, 1, 1).astype(np.float32),
                  bits=8, signed=True, narrow=False)
    # ONNX Runtime's "_quantized" suffix is dropped for the float weights
    assert node.inputs[0].name == "w_1"  # "w" itself is the (kept) DequantizeLinear output name
    restored = constant_array(node.inputs[0])
    expected = ((w_int.astype(np.int64) - zp.reshape(4, 1, 1, 1)).astype(np.float32) * scale.reshape(4, 1, 1, 1))
    np.testing.assert_array_equal(restored, expected)
    assert set(model.graph.initializers) & {"w_quantized", "w_scale", "w_zero_point"} == set()


def test_restored_weights_requantize_exactly():
    rng = np.random.default_rng(5)
    w_int = rng.integers(-127, 128, (64, 33)).astype(np.int8)
    scale = np.float32(0.0071234)
    nodes = [helper.make_node("DequantizeLinear", ["wq", "s"], ["w"], name="dq")]
    proto = make_model(nodes, [], [("w", F, [64, 33])], [("wq", w_int), ("s", scale)])
    model, _ = raised(proto)
    (node,) = qnodes(model)
    kernel, attrs, opset = resolve_kernel(node, model)
    ctx = NodeContext(name="q", op_type=node.op_type, domain=QONNX, opset=opset, attrs=attrs)
    restored = constant_array(node.inputs[0])
    again = kernel(ctx, restored, *[constant_array(v) for v in node.inputs[1:]])
    np.testing.assert_array_equal(again, restored)
    np.testing.assert_array_equal(restored, w_int.astype(np.float32) * scale)


def test_weight_with_clip_on_integer_constant():
    # Brevitas TorchScript QCDQ: Constant(int8) -> Clip(-3, 3) -> DequantizeLinear
    w_int = np.array([[-5, -3, 0, 2, 3, 7]], dtype=np.int8)
    nodes = [
        helper.make_node("Constant", [], ["wc"], value=numpy_helper.from_array(w_int)),
        helper.make_node("Constant", [], ["lo"], value=numpy_helper.from_array(np.array(-3, np.int8))),
        helper.make_node("Constant", [], ["hi"], value=numpy_helper.from_array(np.array(3, np.int8))),
        helper.make_node("Clip", ["wc", "lo", "hi"], ["wclip"], name="/fc/weight_quant/export_handler/Clip"),
        helper.make_node("DequantizeLinear", ["wclip", "s", "z"], ["w"],
                         name="/fc/weight_quant/export_handler/DequantizeLinear"),
        helper.make_node("MatMul", ["x", "w"], ["y"]),
    ]
    proto = make_model(nodes, [("x", F, [2, 1])], [("y", F, [2, 6])], [("s", np.float32(0.25)), ("z", np.int8(0))])
    x = np.array([[1.0], [-3.0]], np.float32)
    model, _ = assert_same_as_ort(proto, {"x": x})
    (node,) = qnodes(model)
    assert node.name == "/fc/weight_quant/export_handler/Quant"
    assert_params(node, scale=0.25, zeropt=0.0, bits=3, signed=True, narrow=True)
    np.testing.assert_array_equal(constant_array(node.inputs[0]), [[-0.75, -0.75, 0, 0.5, 0.75, 0.75]])
    assert [n.op_type for n in model.graph] == ["Quant", "MatMul"]


def test_int32_bias_is_32_bit():
    bias = np.array([-70000, 0, 5, 2**24 - 1], dtype=np.int32)
    nodes = [
        helper.make_node("DequantizeLinear", ["bq", "bs", "bz"], ["b"], name="bias_dq"),
        helper.make_node("Add", ["x", "b"], ["y"]),
    ]
    proto = make_model(nodes, [("x", F, [2, 4])], [("y", F, [2, 4])],
                       [("bq", bias), ("bs", np.float32(1.5e-5)), ("bz", np.int32(0))])
    model, _ = assert_same_as_ort(proto, {"x": np.ones((2, 4), np.float32)})
    assert_params(qnodes(model)[0], scale=np.float32(1.5e-5), zeropt=0.0, bits=32, signed=True, narrow=False)


def test_int4_weights_opset21():
    w = np.array([[-8, -1, 0, 7], [3, 2, -5, 1]], dtype=ml_dtypes.int4)
    nodes = [
        helper.make_node("DequantizeLinear", ["wq", "s", "z"], ["w"], name="dq", axis=0),
        helper.make_node("Mul", ["x", "w"], ["y"]),
    ]
    proto = make_model(nodes, [("x", F, [2, 4])], [("y", F, [2, 4])],
                       [("wq", w), ("s", np.array([0.5, 0.125], np.float32)), ("z", np.array([0, -1], ml_dtypes.int4))],
                       opset=21)
    model, _ = assert_same_as_ort(proto, {"x": np.full((2, 4), 3.0, np.float32)})
    assert_params(qnodes(model)[0], scale=[[0.5], [0.125]], zeropt=[[0.0], [-1.0]], bits=4, signed=True, narrow=False)


@pytest.mark.parametrize("rows", [6, 5])
def test_blocked_weights_opset21(rows):
    # blocks of 2 along axis 0; with 5 rows the last block is partial
    rng = np.random.default_rng(rows)
    w = rng.integers(-8, 8, (rows, 3)).astype(ml_dtypes.int4)
    nblocks = (rows + 1) // 2
    scale = np.array([[0.5, 0.25, 2.0], [0.125, 1.0, 0.75], [3.0, 0.0625, 0.5]], np.float32)[:nblocks]
    zp = np.array([[0, 1, -1], [2, 0, 0], [-3, 1, 0]], ml_dtypes.int4)[:nblocks]
    nodes = [
        helper.make_node("DequantizeLinear", ["wq", "s", "z"], ["w"], name="dq", axis=0, block_size=2),
        helper.make_node("Mul", ["x", "w"], ["y"]),
    ]
    proto = make_model(nodes, [("x", F, [rows, 3])], [("y", F, [rows, 3])],
                       [("wq", w), ("s", scale), ("z", zp)], opset=21)
    model, _ = assert_same_as_ort(proto, {"x": rng.standard_normal((rows, 3)).astype(np.float32)})
    full_scale = np.repeat(scale, 2, axis=0)[:rows]
    full_zp = np.repeat(zp.astype(np.float32), 2, axis=0)[:rows]
    assert_params(qnodes(model)[0], scale=full_scale, zeropt=full_zp, bits=4, signed=True, narrow=False)


def test_blocked_activation_opset21():
    scale = np.array([[0.5, 0.25], [0.125, 1.0]], np.float32)  # x (4, 2), blocks of 2 along axis 0
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"], axis=0, block_size=2),
        helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"], name="dq", axis=0, block_size=2),
    ]
    proto = make_model(nodes, [("x", F, [4, 2])], [("y", F, [4, 2])],
                       [("s", scale), ("z", np.zeros((2, 2), np.int8))], opset=21)
    x = np.array([[0.25, -300], [64.24, 0.375], [0.0625, 1.5], [-16.0625, 127.5]], np.float32)
    model, _ = assert_same_as_ort(proto, {"x": x})
    assert_params(qnodes(model)[0], scale=np.repeat(scale, 2, axis=0), zeropt=np.zeros((4, 2)),
                  bits=8, signed=True, narrow=False)


def test_tensorrt_style_symmetric_int8():
    # pytorch_quantization export: float weights Q->DQ per channel (scale = amax/127), activations per tensor
    rng = np.random.default_rng(2)
    w = rng.standard_normal((3, 8)).astype(np.float32)
    w_scale = (np.abs(w).max(axis=1) / 127).astype(np.float32)
    a_scale = np.float32(2.5 / 127)
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "a_s", "a_z"], ["xq"]),
        helper.make_node("DequantizeLinear", ["xq", "a_s", "a_z"], ["xd"]),
        helper.make_node("QuantizeLinear", ["w", "w_s", "w_z"], ["wq"], axis=0),
        helper.make_node("DequantizeLinear", ["wq", "w_s", "w_z"], ["wd"], axis=0),
        helper.make_node("Mul", ["xd", "wd"], ["y"]),
    ]
    proto = make_model(nodes, [("x", F, [3, 8])], [("y", F, [3, 8])],
                       [("a_s", a_scale), ("a_z", np.int8(0)), ("w", w), ("w_s", w_scale),
                        ("w_z", np.zeros(3, np.int8))])
    x = rng.uniform(-4, 4, (3, 8)).astype(np.float32)
    model, _ = assert_same_as_ort(proto, {"x": x})
    act, weight = qnodes(model)
    assert_params(act, scale=a_scale, zeropt=0.0, bits=8, signed=True, narrow=False)
    assert_params(weight, scale=w_scale.reshape(3, 1), zeropt=np.zeros((3, 1)), bits=8, signed=True, narrow=False)
    assert weight.inputs[0].name == "w"  # the float weight itself, no precomputation


@pytest.mark.parametrize("ties", [False, True])
def test_float_weight_with_odd_zero_point(ties):
    # Brevitas' dynamo export: float weights -> QuantizeLinear(zp=127) -> DequantizeLinear. When a weight
    # sits exactly on a rounding tie the two rounding orders differ, so the Quant reads the DQ's values.
    w = np.array([[0.3, -0.27, 1.1, 0.05], [0.8, -0.6, 0.0, 0.41]], np.float32)
    if ties:
        w[0, 0], w[1, 3] = 2.5 * 0.125, -0.5 * 0.125  # x/s = 2.5 and -0.5 exactly
    nodes = [
        helper.make_node("QuantizeLinear", ["w", "s", "z"], ["wq"]),
        helper.make_node("DequantizeLinear", ["wq", "s", "z"], ["wd"], name="wdq"),
        helper.make_node("Mul", ["x", "wd"], ["y"]),
    ]
    proto = make_model(nodes, [("x", F, [2, 4])], [("y", F, [2, 4]), ("wd", F, [2, 4])],
                       [("w", w), ("s", np.float32(0.125)), ("z", np.uint8(127))])
    model, result = assert_same_as_ort(proto, {"x": np.ones((2, 4), np.float32)})
    (node,) = qnodes(model)
    assert_params(node, scale=0.125, zeropt=127.0, bits=8, signed=False, narrow=False)
    if ties:
        assert node.inputs[0].name == "w_dequantized" and "w" not in model.graph.initializers
        assert any("exact rounding ties" in n for n in result.notes)
    else:
        assert node.inputs[0].name == "w"
        assert not any("ties" in n for n in result.notes)


# ---------------------------------------------------------------------------------------------
# float8


@pytest.mark.parametrize("saturate", [1, 0])
def test_float8_e4m3fn_activation(saturate):
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"], saturate=saturate),
        helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"], name="dq"),
    ]
    proto = make_model(nodes, [("x", F, [1, 700])], [("y", F, [1, 700])],
                       [("s", np.float32(0.5)), ("z", np.array(0, ml_dtypes.float8_e4m3fn))], opset=19)
    grid = np.array([float(v) for v in np.arange(256, dtype=np.uint8).view(ml_dtypes.float8_e4m3fn)
                     if np.isfinite(float(v))], np.float64) * 0.5
    mids = (grid[:-1] + np.diff(grid) / 2)
    x = np.concatenate([grid, mids, mids * (1 + 1e-6), [230.0, 232.0, 240.0, 1e4, -1e4, -240.0]])
    x = np.resize(x.astype(np.float32), 700).reshape(1, 700)
    expected = ort(proto, {"x": x})["y"]
    model, _ = raised(proto)
    got = Executor(model).run({"x": x})["y"]
    np.testing.assert_array_equal(got, expected)
    (node,) = qnodes(model)
    p = params(node)
    assert node.op_type == "FloatQuant"
    keys = ("scale", "exponent_bitwidth", "mantissa_bitwidth", "exponent_bias", "max_val")
    assert {k: float(p[k]) for k in keys} == {
        "scale": 0.5, "exponent_bitwidth": 4.0, "mantissa_bitwidth": 3.0, "exponent_bias": 7.0, "max_val": 448.0}
    assert (p["has_inf"], p["has_nan"], p["has_subnormal"], p["saturation"]) == (0, 1, 1, saturate)


FORMATS = {
    "e4m3fn": (ml_dtypes.float8_e4m3fn, (4, 3, 7, 448.0), (0, 1)),
    "e4m3fnuz": (ml_dtypes.float8_e4m3fnuz, (4, 3, 8, 240.0), (0, 1)),
    "e5m2": (ml_dtypes.float8_e5m2, (5, 2, 15, 57344.0), (1, 1)),
    "e5m2fnuz": (ml_dtypes.float8_e5m2fnuz, (5, 2, 16, 57344.0), (0, 1)),
}


@pytest.mark.parametrize("saturate", [1, 0])
@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_float8_formats_with_specials(fmt, saturate):
    dtype, (e, m, bias, max_val), (has_inf, has_nan) = FORMATS[fmt]
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"], saturate=saturate),
        helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"], name="dq"),
    ]
    proto = make_model(nodes, [("x", F, [1, 64])], [("y", F, [1, 64])],
                       [("s", np.float32(0.75)), ("z", np.array(0, dtype))], opset=19)
    x = np.resize(np.array([np.inf, -np.inf, np.nan, 1e9, -1e9, 3.1, 0.0, 1e-30, 200.0, 500.0, 1e-3, -7.3e4,
                            max_val * 0.75, max_val * 0.76, max_val * 0.8, -max_val], np.float32), (1, 64))
    x[0, 16:] = np.random.default_rng(0).standard_normal(48) * 10.0 ** np.arange(-4, 8)[np.arange(48) % 12]
    expected = ort(proto, {"x": x})["y"]
    model, _ = raised(proto)
    got = Executor(model).run({"x": x})["y"]
    np.testing.assert_array_equal(got, expected)  # NaN == NaN here; -0 == +0
    p = params(qnodes(model)[0])
    assert [float(p[k]) for k in ("exponent_bitwidth", "mantissa_bitwidth", "exponent_bias", "max_val")] == [
        e, m, bias, max_val]
    assert (p["has_inf"], p["has_nan"], p["has_subnormal"], p["saturation"]) == (has_inf, has_nan, 1, saturate)


def test_float4_e2m1_weights_on_executor():
    # onnxruntime has no float4 QuantizeLinear/DequantizeLinear; compare with our executor on the original
    w = np.array([[-6, -0.5, 0, 1.5], [3, 4, -2, 0.5]], ml_dtypes.float4_e2m1fn)
    nodes = [
        helper.make_node("DequantizeLinear", ["w4", "s"], ["w"], name="dq", axis=0),
        helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["q"]),
        helper.make_node("DequantizeLinear", ["q", "xs", "xz"], ["xd"], name="xdq"),
        helper.make_node("Mul", ["xd", "w"], ["y"]),
    ]
    proto = make_model(nodes, [("x", F, [2, 4])], [("y", F, [2, 4])],
                       [("w4", w), ("s", np.array([0.5, 2.0], np.float32)), ("xs", np.float32(0.25)),
                        ("xz", np.array(0, ml_dtypes.float4_e2m1fn))], opset=23)
    x = np.array([[0.3, -100, 0.625, 1.125], [0.1, 2.5, -0.0, 0.75]], np.float32)
    expected = Executor(to_ir(proto)).run({"x": x})["y"]
    model, _ = raised(proto)
    np.testing.assert_array_equal(Executor(model).run({"x": x})["y"], expected)
    for node in qnodes(model):
        p = params(node)
        assert [float(p[k]) for k in ("exponent_bitwidth", "mantissa_bitwidth", "exponent_bias", "max_val")] == [
            2.0, 1.0, 1.0, 6.0]
        assert (p["has_inf"], p["has_nan"], p["saturation"]) == (0, 0, 1)


def test_float8_e5m2_per_axis_weights_and_activation():
    w8 = np.array([[1.5, -57344, 0.0000152587890625, 3], [0.25, -0.75, 96, -2]], ml_dtypes.float8_e5m2)
    z = np.zeros(2, ml_dtypes.float8_e5m2)
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["q"]),
        helper.make_node("DequantizeLinear", ["q", "xs", "xz"], ["xd"]),
        helper.make_node("DequantizeLinear", ["w8", "ws", "wz"], ["w"], axis=0),
        helper.make_node("Mul", ["xd", "w"], ["y"]),
    ]
    proto = make_model(nodes, [("x", F, [2, 4])], [("y", F, [2, 4]), ("xd", F, [2, 4])],
                       [("w8", w8), ("ws", np.array([0.5, 2.0], np.float32)), ("wz", z),
                        ("xs", np.float32(0.25)), ("xz", np.array(0, ml_dtypes.float8_e5m2))], opset=19)
    x = np.array([[0.3, -1e6, 7.0, 14335.9], [1e-9, 2.5, -0.0, 3.0]], np.float32)
    model, _ = assert_same_as_ort(proto, {"x": x})
    act, weight = qnodes(model)
    for node in (act, weight):
        p = params(node)
        assert node.op_type == "FloatQuant"
        assert [float(p[k]) for k in ("exponent_bitwidth", "mantissa_bitwidth", "exponent_bias", "max_val")] == [
            5.0, 2.0, 15.0, 57344.0]
        assert (p["has_inf"], p["has_nan"], p["saturation"]) == (1, 1, 1)
    np.testing.assert_array_equal(params(weight)["scale"], [[0.5], [2.0]])


def test_int32_constant_beyond_float32_stays():
    # 2**31 - 1 is not a float32: the restored value would not re-quantize to itself
    nodes = [helper.make_node("DequantizeLinear", ["bq", "bs"], ["b"], name="bias_dq")]
    proto = make_model(nodes, [], [("b", F, [2])],
                       [("bq", np.array([1, 2**31 - 1], np.int32)), ("bs", np.float32(0.5))])
    _, result = raised(proto, allow_partial=True)
    assert [u.node for u in result.unconverted] == ["bias_dq"]
    assert "exactly" in result.unconverted[0].reason


# ---------------------------------------------------------------------------------------------
# fan-out


def test_dq_read_by_two_consumers_gives_one_quant():
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"]),
        helper.make_node("DequantizeLinear", ["q", "s", "z"], ["d"], name="dq"),
        helper.make_node("Relu", ["d"], ["a"]),
        helper.make_node("Neg", ["d"], ["b"]),
    ]
    proto = make_model(nodes, [("x", F, [1, 600])], [("a", F, [1, 600]), ("b", F, [1, 600])],
                       [("s", np.float32(0.125)), ("z", np.int8(-2))])
    model, _ = assert_same_as_ort(proto, {"x": probe(0.125, -128, 127, zp=-2, shape=(1, 600))})
    (node,) = qnodes(model)
    assert sorted(c.op_type for c in node.outputs[0].consumers()) == ["Neg", "Relu"]
    assert std_qdq(model) == []


def test_quantize_shared_by_two_dequantize_pairs():
    # onnxruntime's QDQ format: one QuantizeLinear, one DequantizeLinear per consumer
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"], name="q"),
        helper.make_node("DequantizeLinear", ["q", "s", "z"], ["d1"], name="dq1"),
        helper.make_node("DequantizeLinear", ["q", "s", "z"], ["d2"], name="dq2"),
        helper.make_node("Relu", ["d1"], ["a"]),
        helper.make_node("Neg", ["d2"], ["b"]),
    ]
    proto = make_model(nodes, [("x", F, [1, 600])], [("a", F, [1, 600]), ("b", F, [1, 600])],
                       [("s", np.float32(0.25)), ("z", np.uint8(10))])
    model, _ = assert_same_as_ort(proto, {"x": probe(0.25, 0, 255, zp=10, shape=(1, 600))})
    nodes_ = qnodes(model)
    assert [n.name for n in nodes_] == ["dq1", "dq2"]
    for n in nodes_:
        assert_params(n, scale=0.25, zeropt=10.0, bits=8, signed=False, narrow=False)
        assert n.inputs[0].name == "x"
    assert std_qdq(model) == []


def test_clip_shared_by_two_dequantize():
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"]),
        helper.make_node("Clip", ["q", "lo", "hi"], ["c"]),
        helper.make_node("DequantizeLinear", ["c", "s", "z"], ["y1"], name="dq1"),
        helper.make_node("DequantizeLinear", ["c", "s", "z"], ["y2"], name="dq2"),
    ]
    proto = make_model(nodes, [("x", F, [1, 600])], [("y1", F, [1, 600]), ("y2", F, [1, 600])],
                       [("s", np.float32(0.5)), ("z", np.int8(0)), ("lo", np.int8(-8)), ("hi", np.int8(7))])
    model, _ = assert_same_as_ort(proto, {"x": probe(0.5, -8, 7, shape=(1, 600))})
    assert len(qnodes(model)) == 2 and std_qdq(model) == []


def test_requantization_chain():
    # Q1 -> DQ1 -> Q2 -> DQ2: both quantizers raise, the second reads the first's output
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "s1", "z1"], ["q1"]),
        helper.make_node("DequantizeLinear", ["q1", "s1", "z1"], ["d1"], name="dq1"),
        helper.make_node("QuantizeLinear", ["d1", "s2", "z2"], ["q2"]),
        helper.make_node("DequantizeLinear", ["q2", "s2", "z2"], ["y"], name="dq2"),
    ]
    proto = make_model(nodes, [("x", F, [1, 600])], [("y", F, [1, 600])],
                       [("s1", np.float32(0.125)), ("z1", np.int8(0)), ("s2", np.float32(0.5)), ("z2", np.uint8(0))])
    model, _ = assert_same_as_ort(proto, {"x": probe(0.125, -128, 127, shape=(1, 600))})
    first, second = qnodes(model)
    assert second.inputs[0] is first.outputs[0]


# ---------------------------------------------------------------------------------------------
# what cannot be raised


def test_lone_quantize_linear_is_unconverted():
    # integer tensor flowing into QLinearMatMul: no QONNX form
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"], name="lone_q"),
        helper.make_node("QLinearMatMul", ["q", "s", "z", "w", "ws", "wz", "ys", "yz"], ["yq"], name="qmm"),
        helper.make_node("DequantizeLinear", ["yq", "ys", "yz"], ["y"], name="out_dq"),
    ]
    proto = make_model(nodes, [("x", F, [2, 3])], [("y", F, [2, 2])],
                       [("s", np.float32(0.1)), ("z", np.uint8(128)), ("w", np.ones((3, 2), np.uint8)),
                        ("ws", np.float32(0.01)), ("wz", np.uint8(0)), ("ys", np.float32(0.05)), ("yz", np.uint8(0))])
    model = to_ir(proto)
    before = onnx.printer.to_text(ir.to_proto(model))
    with pytest.raises(ConversionError, match="lone_q.*QLinearMatMul"):
        to_qonnx(model)
    assert onnx.printer.to_text(ir.to_proto(model)) == before  # untouched on error
    model, result = raised(proto, allow_partial=True)
    assert {(u.node, u.op) for u in result.unconverted} == {
        ("lone_q", "QuantizeLinear"), ("out_dq", "DequantizeLinear")}
    reasons = {u.node: u.reason for u in result.unconverted}
    assert "QLinearMatMul" in reasons["out_dq"]
    assert qnodes(model) == []


def test_quantize_read_by_dq_and_qlinear_op_stays_and_is_listed():
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"], name="q"),
        helper.make_node("DequantizeLinear", ["q", "s", "z"], ["d"], name="dq"),
        helper.make_node("QLinearMatMul", ["q", "s", "z", "w", "ws", "wz", "ys", "yz"], ["yq"], name="qmm"),
    ]
    proto = make_model(nodes, [("x", F, [2, 3])], [("d", F, [2, 3]), ("yq", TensorProto.UINT8, [2, 2])],
                       [("s", np.float32(0.1)), ("z", np.uint8(128)), ("w", np.ones((3, 2), np.uint8)),
                        ("ws", np.float32(0.01)), ("wz", np.uint8(0)), ("ys", np.float32(0.05)), ("yz", np.uint8(0))])
    x = np.random.default_rng(0).uniform(-20, 20, (2, 3)).astype(np.float32)
    model, result = assert_same_as_ort(proto, {"x": x}, allow_partial=True)
    assert [(u.node, u.op) for u in result.unconverted] == [("q", "QuantizeLinear")]
    assert [n.op_type for n in model.graph] == ["QuantizeLinear", "Quant", "QLinearMatMul"]


def test_quantize_output_as_graph_output_stays():
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"], name="q"),
        helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"], name="dq"),
    ]
    proto = make_model(nodes, [("x", F, [4])], [("y", F, [4]), ("q", TensorProto.INT8, [4])],
                       [("s", np.float32(0.5)), ("z", np.int8(0))])
    x = np.array([0.25, 0.75, -70.0, 3.3], np.float32)
    model, result = assert_same_as_ort(proto, {"x": x}, allow_partial=True)
    assert [(u.node, u.op) for u in result.unconverted] == [("q", "QuantizeLinear")]
    assert "a graph output" in result.unconverted[0].reason  # names in detail: equal reasons group
    assert result.unconverted[0].detail == "graph output 'q'"
    assert [n.op_type for n in model.graph] == ["QuantizeLinear", "Quant"]


def test_per_axis_length_mismatch_is_refused():
    nodes = [helper.make_node("DequantizeLinear", ["wq", "s"], ["w"], name="dq", axis=0)]
    proto = make_model(nodes, [], [("w", F, [3, 2])], [("wq", np.ones((3, 2), np.int8)), ("s", np.ones(2, np.float32))])
    _, result = raised(proto, allow_partial=True)
    assert "2 values for a dimension of 3" in result.unconverted[0].reason


def test_dequantize_of_graph_input_is_unconverted():
    nodes = [helper.make_node("DequantizeLinear", ["xi", "s", "z"], ["y"], name="dq_in")]
    proto = make_model(nodes, [("xi", TensorProto.INT8, [4])], [("y", F, [4])],
                       [("s", np.float32(0.1)), ("z", np.int8(0))])
    with pytest.raises(ConversionError, match="dq_in.*graph input"):
        raised(proto)
    model, result = raised(proto, allow_partial=True)
    assert [u.node for u in result.unconverted] == ["dq_in"]
    assert [n.op_type for n in model.graph] == ["DequantizeLinear"]
    assert QONNX not in model.opset_imports


def test_dynamic_quantize_linear_stays():
    nodes = [
        helper.make_node("DynamicQuantizeLinear", ["x"], ["q", "qs", "qz"], name="dyn"),
        helper.make_node("DequantizeLinear", ["q", "qs", "qz"], ["y"], name="dyn_dq"),
    ]
    proto = make_model(nodes, [("x", F, [8])], [("y", F, [8])])
    with pytest.raises(ConversionError, match="DynamicQuantizeLinear"):
        raised(proto)
    model, result = raised(proto, allow_partial=True)
    assert [n.op_type for n in model.graph] == ["DynamicQuantizeLinear", "DequantizeLinear"]
    assert [u.node for u in result.unconverted] == ["dyn_dq"]
    assert any("DynamicQuantizeLinear 'dyn' kept" in n for n in result.notes)


def test_mismatched_q_and_dq_parameters_are_a_requantization():
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "s1", "z"], ["q"], name="q"),
        helper.make_node("DequantizeLinear", ["q", "s2", "z"], ["y"], name="dq"),
    ]
    proto = make_model(nodes, [("x", F, [4])], [("y", F, [4])],
                       [("s1", np.float32(0.1)), ("s2", np.float32(0.2)), ("z", np.int8(0))])
    model, result = raised(proto, allow_partial=True)
    assert {u.node for u in result.unconverted} == {"q", "dq"}
    assert "other parameters" in {u.node: u.reason for u in result.unconverted}["dq"]


def test_clip_range_without_qonnx_form():
    proto = qdq_act(np.int8, 0.5, 0, clip=(-3, 5))
    with pytest.raises(ConversionError, match=r"\[-3, 5\]"):
        raised(proto)


def test_run_time_scale_is_unconverted():
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"], name="q"),
        helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"], name="dq"),
    ]
    proto = make_model(nodes, [("x", F, [4]), ("s", F, [])], [("y", F, [4])], [("z", np.int8(0))])
    _, result = raised(proto, allow_partial=True)
    assert "computed at run time" in {u.node: u.reason for u in result.unconverted}["dq"]


# ---------------------------------------------------------------------------------------------
# model-level properties


def test_opsets_names_and_round_trip(tmp_path):
    proto = qdq_act(np.int8, 0.0625, 0, clip=(-127, 127))
    model, result = raised(proto)
    assert model.opset_imports[""] == 13 and model.opset_imports[QONNX] == QONNX_OPSET_VERSION
    assert [o.name for o in model.graph.outputs] == ["y"]
    assert result.target == "qonnx" and result.notes[0].startswith("raised 1 ")
    path = model_io.save(model, tmp_path / "raised.onnx")
    again = model_io.load(path)
    x = probe(0.0625, -128, 127, shape=(1, 600))
    np.testing.assert_array_equal(Executor(again).run({"x": x})["y"], ort(proto, {"x": x})["y"])
    onnx.checker.check_model(onnx.load(path))


def test_existing_qonnx_import_keeps_its_version():
    proto = qdq_act(np.int8, 0.0625, 0)
    proto.opset_import.append(helper.make_opsetid(QONNX, 2))
    model, _ = raised(proto)
    assert model.opset_imports[QONNX] == 2


def test_model_without_qdq_is_unchanged():
    proto = make_model([helper.make_node("Relu", ["x"], ["y"])], [("x", F, [3])], [("y", F, [3])])
    model, result = raised(proto)
    assert [n.op_type for n in model.graph] == ["Relu"]
    assert QONNX not in model.opset_imports and result.unconverted == [] and result.notes == []


# ---------------------------------------------------------------------------------------------
# the Brevitas corpus


def _corpus_cases():
    cases = []
    for folder in brevitas_models():
        for name in ("qcdq.onnx", "qcdq_dynamo.onnx"):
            if (folder / name).exists():
                cases.append(pytest.param(folder, name, id=f"{folder.name}/{name}", marks=pytest.mark.shared))
    return cases or [pytest.param(None, None, marks=pytest.mark.skip(reason="shared corpus not present"))]


#: files onnxruntime refuses to load (the ORT comparisons skip them, the others still run)
ORT_REJECTS = {("fp8_ocp", "qcdq_dynamo.onnx"): "onnxruntime rejects fp8_ocp/qcdq_dynamo.onnx (invalid graph)"}


def _skip_if_ort_rejects(folder, name):
    reason = ORT_REJECTS.get((folder.name, name))
    if reason:
        pytest.skip(reason)


def _load_raised(folder, name, *, allow_partial=False):
    model = model_io.load(folder / name)
    return model, to_qonnx(model, allow_partial=allow_partial)


def _producer_op(model, output_name):
    for value in model.graph.outputs:
        if value.name == output_name:
            producer = value.producer()
            return producer.op_type if producer is not None else None
    return None


@pytest.mark.shared
@pytest.mark.parametrize("folder, name", _corpus_cases())
def test_corpus_no_standard_quantizers_left(folder, name):
    model, result = _load_raised(folder, name, allow_partial=True)
    left = [n for n in model.graph if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    listed = {u.node for u in result.unconverted}
    assert {n.name for n in left} == listed
    if folder.name == "dynamic_act":
        assert sum(n.op_type == "DynamicQuantizeLinear" for n in model.graph) == 2
        assert len(listed) == 2 and all("DynamicQuantizeLinear" in u.reason for u in result.unconverted)
        with pytest.raises(ConversionError):
            _load_raised(folder, name)
    else:
        assert listed == set()
        assert all(n.op_type != "Clip" or n.inputs[0].dtype.is_floating_point() for n in model.graph)
        assert qnodes(model)


@pytest.mark.shared
@pytest.mark.parametrize("folder, name", _corpus_cases())
def test_corpus_outputs_match_onnxruntime(folder, name):
    _skip_if_ort_rejects(folder, name)
    feeds = {"input": np.load(folder / "io.npz")["input"]}
    original = model_io.load(folder / name)
    names = [n.outputs[0].name for n in original.graph if n.op_type == "DequantizeLinear"]
    reference = run_onnxruntime(original, feeds, extra_outputs=names)
    exec_original = Executor(original).run(feeds, keep_intermediates=True)
    model, _ = _load_raised(folder, name, allow_partial=True)
    got = Executor(model).run(feeds, keep_intermediates=True)

    # 1. raising is exact: the raised model computes exactly what the original does (same executor)
    for key in names + [v.name for v in model.graph.outputs]:
        np.testing.assert_array_equal(got[key], exec_original[key], err_msg=key)

    # 2. against onnxruntime on the original
    for out in (v.name for v in original.graph.outputs):
        expected, actual = reference[out], got[out]
        if folder.name in TIE_SENSITIVE:
            _assert_first_divergence_is_a_tie(model, names, reference, got)
        elif _producer_op(model, out) in QOPS:
            np.testing.assert_array_equal(actual, expected, err_msg=out)  # on the quantization grid
        else:
            tol = 1e-5 * float(np.abs(expected).max())
            np.testing.assert_allclose(actual, expected, rtol=0, atol=tol, err_msg=out)


def _assert_first_divergence_is_a_tie(model, names, reference, got):
    """Deep 4-bit models: the first quantized tensor that differs does so by <= 1 step on <= 0.1%.

    (Our executor and onnxruntime sum convolutions in different orders; a value 4e-8 from a
    rounding tie flips one step and the flip spreads downstream. The raised model itself is
    checked bit for bit against the original on the same executor above.)
    """
    producers = {n.outputs[0].name: n for n in qnodes(model)}
    for key in names:  # topological order of the original
        a, b = reference[key], got[key]
        if np.array_equal(a, b):
            continue
        step = np.broadcast_to(np.abs(constant_array(producers[key].inputs[1])), a.shape)
        diff = np.abs(a.astype(np.float64) - b)
        assert np.all(diff <= step * 1.0001), key
        assert np.count_nonzero(diff) <= 0.001 * diff.size, key
        return


@pytest.mark.shared
@pytest.mark.parametrize("folder, name", _corpus_cases())
def test_corpus_each_quantizer_matches_onnxruntime_on_its_input(folder, name):
    """Every raised node, fed onnxruntime's value of its input, gives onnxruntime's DQ output exactly."""
    _skip_if_ort_rejects(folder, name)
    feeds = {"input": np.load(folder / "io.npz")["input"]}
    original = model_io.load(folder / name)
    model, _ = _load_raised(folder, name, allow_partial=True)
    nodes = qnodes(model)
    wanted = [n.outputs[0].name for n in nodes] + [n.inputs[0].name for n in nodes if n.inputs[0].const_value is None]
    reference = run_onnxruntime(original, feeds, extra_outputs=[w for w in wanted if w not in feeds])
    reference.update(feeds)
    for node in nodes:
        x = constant_array(node.inputs[0])
        if x is None:
            x = reference[node.inputs[0].name]
        kernel, attrs, opset = resolve_kernel(node, model)
        ctx = NodeContext(name=node.name, op_type=node.op_type, domain=QONNX, opset=opset, attrs=attrs)
        y = kernel(ctx, x, *[constant_array(v) for v in node.inputs[1:]])
        np.testing.assert_array_equal(y, reference[node.outputs[0].name], err_msg=node.name)


@pytest.mark.shared
@pytest.mark.parametrize("folder, name", _corpus_cases())
def test_corpus_raised_equals_original_on_executor(folder, name):
    """Without onnxruntime: the raised model computes exactly what the original computes (our executor),
    and where Brevitas' own output is on a quantization grid, equals it too."""
    io = np.load(folder / "io.npz")
    feeds = {"input": io["input"]}
    original = model_io.load(folder / name)
    expected = Executor(original).run(feeds)
    model, result = _load_raised(folder, name, allow_partial=True)
    raised = qnodes(model)
    assert raised, f"nothing was raised in {folder.name}/{name}"
    assert result.notes and result.notes[0].startswith(f"raised {len(raised)} DequantizeLinear chain(s)")
    got = Executor(model).run(feeds)
    for key in expected:
        np.testing.assert_array_equal(got[key], expected[key], err_msg=key)
    if folder.name == "fp8_ocp":  # the file onnxruntime rejects: compare with Brevitas' PyTorch output
        np.testing.assert_array_equal(got[model.graph.outputs[0].name], io["output"])


def _quantizers_by_use(model):
    """Quantizer nodes keyed by what reads their output (consumer name/op/input slot, graph output slot)."""
    qtypes = QOPS + ("Trunc", "BipolarQuant")
    keys: dict[int, tuple] = {}

    def key(node):
        if id(node) not in keys:
            v = node.outputs[0]
            parts = []
            for c in v.consumers():
                slot = list(c.inputs).index(v)
                parts.append(("quantizer", key(c), slot) if c.op_type in qtypes else (c.name, c.op_type, slot))
            if v.is_graph_output():
                parts.append(("<output>", [o.name for o in model.graph.outputs].index(v.name)))
            keys[id(node)] = tuple(sorted(parts, key=repr))
        return keys[id(node)]

    return {key(n): n for n in model.graph if n.op_type in qtypes}


def _compare_quantizer(ours, theirs):
    """Differences between a raised node and Brevitas' QONNX node ({} when they agree)."""
    diffs = {}
    if ours.op_type != ("Quant" if theirs.op_type in ("Quant", "IntQuant") else theirs.op_type):
        return {"op": (ours.op_type, theirs.op_type)}
    p, q = params(ours), params(theirs)
    for k, v in p.items():
        if isinstance(v, np.ndarray):
            w = q[k]
            shape = np.broadcast_shapes(v.shape, w.shape)
            if not np.array_equal(np.broadcast_to(v, shape), np.broadcast_to(w, shape)):
                diffs[k] = (v.ravel()[:4].tolist(), w.ravel()[:4].tolist())
        elif k == "rounding_mode":
            if str(v).upper() != str(q.get(k, "ROUND")).upper():
                diffs[k] = (v, q.get(k))
        elif v != q.get(k):
            diffs[k] = (v, q.get(k))
    return diffs


#: (folder, file) -> {raised node name: why it cannot equal Brevitas' QONNX node}
KNOWN_PARAM_DIFFERENCES = {
    # Int16Bias: QCDQ stores the bias as int32 without a Clip, so only the container's 32 bits are in the file
    ("bias_quant_variants", "qcdq.onnx"): {"/fc2/bias_quant/export_handler/Quant": "bitwidth"},
    # TruncAvgPool2d: QCDQ writes AveragePool + QuantizeLinear (rounding), QONNX a Trunc node (floor)
    ("imagenet_mobilenet_v1_4b", "qcdq.onnx"): {"*trunc_quant*": "op"},
    ("trunc_avgpool_floor", "qcdq.onnx"): {"*trunc_quant*": "op"},
}


@pytest.mark.shared
@pytest.mark.parametrize("folder, name", _corpus_cases())
def test_corpus_parameters_match_brevitas_qonnx(folder, name):
    ref_name = "qonnx.onnx" if name == "qcdq.onnx" else "qonnx_dynamo.onnx"
    if not (folder / ref_name).exists():
        pytest.skip(f"no {ref_name} in {folder.name}")
    model, _ = _load_raised(folder, name, allow_partial=True)
    ours = _quantizers_by_use(model)
    theirs = _quantizers_by_use(model_io.load(folder / ref_name))
    known = KNOWN_PARAM_DIFFERENCES.get((folder.name, name), {})
    report = {"unmatched": [], "different": {}}
    for key, node in ours.items():
        if key not in theirs:
            report["unmatched"].append(node.name)
            continue
        diffs = _compare_quantizer(node, theirs[key])
        if diffs:
            report["different"][node.name] = diffs
    for node_name, diffs in report["different"].items():
        reasons = [field for pattern, field in known.items() if fnmatch.fnmatchcase(node_name, pattern)]
        assert reasons and set(diffs) == set(reasons[:1]), (node_name, diffs)
    for pattern in known:  # the table lists only differences that really occur
        assert any(fnmatch.fnmatchcase(n, pattern) for n in report["different"]), pattern
    # every quantizer found its counterpart (same consumers, same input slots)
    assert report["unmatched"] == [], report
    assert len(ours) == len(theirs)
