"""IntQuant (alias Quant): rounding table, ranges, broadcasting, validation, Brevitas references."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper

from qonnx_tools._ir import ir
from qonnx_tools.datatypes import DataType
from qonnx_tools.errors import InvalidAttributeError
from qonnx_tools.executor import execute
from qonnx_tools.node_context import NodeContext
from qonnx_tools.ops import get_op
from qonnx_tools.ops.base import TensorInfo
from qonnx_tools.ops.intquant import IntQuant
from qonnx_tools.testing import shared_dir

NODE = "quant_node_7"


def make_ctx(**attrs) -> NodeContext:
    where = f"node {NODE!r} (IntQuant)"
    return NodeContext(NODE, "IntQuant", "qonnx.custom_op.general", 1, IntQuant.resolve_attributes(attrs, where))


def quant(x, scale=1.0, zeropt=0.0, bitwidth=8.0, **attrs) -> np.ndarray:
    return IntQuant.execute(
        make_ctx(**attrs),
        np.asarray(x, dtype=np.float32),
        np.asarray(scale, dtype=np.float32),
        np.asarray(zeropt, dtype=np.float32),
        np.asarray(bitwidth),
    )


# -- rounding ------------------------------------------------------------------

TABLE_INPUTS = [5.5, 2.5, 1.6, 1.1, 1.0, -1.0, -1.1, -1.6, -2.5, -5.5]
# Columns of the rounding-mode table in intquant_v1.md, typed in.
TABLE = {
    "ROUND": [6, 2, 2, 1, 1, -1, -1, -2, -2, -6],
    "CEIL": [6, 3, 2, 2, 1, -1, -1, -1, -2, -5],
    "FLOOR": [5, 2, 1, 1, 1, -1, -2, -2, -3, -6],
    "UP": [6, 3, 2, 2, 1, -1, -2, -2, -3, -6],
    "DOWN": [5, 2, 1, 1, 1, -1, -1, -1, -2, -5],
    "HALF_UP": [6, 3, 2, 1, 1, -1, -1, -2, -3, -6],
    "HALF_DOWN": [5, 2, 2, 1, 1, -1, -1, -2, -2, -5],
}


@pytest.mark.parametrize("mode", sorted(TABLE))
def test_rounding_table(mode):
    y = quant(TABLE_INPUTS, bitwidth=8, rounding_mode=mode)
    assert y.tolist() == [float(v) for v in TABLE[mode]]


@pytest.mark.parametrize("spelling", ["round", "Round", " ROUND ", "half_even", "HALF_EVEN"])
def test_rounding_mode_spellings_mean_round(spelling):
    ctx = make_ctx(rounding_mode=spelling)
    assert ctx.attrs["rounding_mode"] == "ROUND"
    y = quant(TABLE_INPUTS, rounding_mode=spelling)
    assert y.tolist() == [float(v) for v in TABLE["ROUND"]]


def test_default_attributes():
    attrs = make_ctx().attrs
    assert attrs["signed"] == 1 and attrs["narrow"] == 0 and attrs["rounding_mode"] == "ROUND"


def test_float32_division_like_brevitas():
    # float32(-19.75) / float32(0.1) is exactly -197.5 in float32 (float64 would give
    # -197.4999970...); PyTorch computes in float32, so the tie rounds to even: -198.
    y = quant([-19.75], scale=0.1, bitwidth=16)
    assert y.dtype == np.float32
    assert y[0] == np.float32(-198) * np.float32(0.1)
    # float32(0.25) / float32(0.1) is exactly 2.5: HALF_UP gives 3 (float64 would give 2)
    y = quant([0.25], scale=0.1, bitwidth=16, rounding_mode="HALF_UP")
    assert y[0] == np.float32(3) * np.float32(0.1)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_output_dtype_follows_x(dtype):
    ctx = make_ctx()
    y = IntQuant.execute(ctx, np.array([0.3, -2.2], dtype=dtype), np.float32(0.5), np.float32(0), np.int32(4))
    assert y.dtype == dtype
    assert y.tolist() == [0.5, -2.0]


def test_scalar_input():
    y = IntQuant.execute(make_ctx(), np.float32(3.3), np.float32(1), np.float32(0), np.float32(8))
    assert np.shape(y) == () and float(y) == 3.0


# -- ranges --------------------------------------------------------------------


def spec_range(signed: bool, narrow: bool, bits: int) -> tuple[int, int]:
    """min_int / max_int as written in intquant_v1.md."""
    if signed:
        lo = -(2 ** (bits - 1)) + (1 if narrow else 0)
        hi = 2 ** (bits - 1) - 1
    else:
        lo = 0
        hi = 2**bits - (2 if narrow else 1)
    return lo, hi


@pytest.mark.parametrize("bits", range(1, 17))
@pytest.mark.parametrize("signed", [0, 1])
@pytest.mark.parametrize("narrow", [0, 1])
def test_integer_ranges(bits, signed, narrow):
    lo, hi = spec_range(bool(signed), bool(narrow), bits)
    x = np.arange(lo - 5, hi + 6)
    y = quant(x, bitwidth=bits, signed=signed, narrow=narrow)
    expected = np.concatenate([np.full(5, lo), np.arange(lo, hi + 1), np.full(5, hi)])
    np.testing.assert_array_equal(y, expected.astype(np.float32))


def test_one_bit_ranges():
    x = [-3.0, -1.0, -0.4, 0.0, 0.6, 1.0, 3.0]
    assert quant(x, bitwidth=1, signed=1).tolist() == [-1, -1, 0, 0, 0, 0, 0]
    assert quant(x, bitwidth=1, signed=1, narrow=1).tolist() == [0] * 7
    assert quant(x, bitwidth=1, signed=0).tolist() == [0, 0, 0, 0, 1, 1, 1]
    assert quant(x, bitwidth=1, signed=0, narrow=1).tolist() == [0] * 7


def test_wide_bitwidth_stays_in_range():
    # 2**31 - 1 is not a float32; the clamp must not produce 2**31
    y = quant([1e12, -1e12], bitwidth=32)
    assert y[0] <= 2**31 - 1 and y[1] == -(2**31)


# -- broadcasting and zero-point -------------------------------------------------


def test_per_channel_scale():
    x = np.array([[0.3, -0.9, 1.1], [0.3, -0.9, 1.1], [0.3, -0.9, 1.1]], dtype=np.float32)
    scale = np.array([[0.5], [0.25], [2.0]], dtype=np.float32)
    y = quant(x, scale=scale, bitwidth=4)
    assert y.tolist() == [[0.5, -1.0, 1.0], [0.25, -1.0, 1.0], [0.0, -0.0, 2.0]]


def test_per_channel_scale_saturates_per_channel():
    # 3-bit signed: integers -4..3
    x = np.array([[10.0, -10.0], [10.0, -10.0]], dtype=np.float32)
    y = quant(x, scale=np.array([[1.0], [0.5]]), bitwidth=3)
    assert y.tolist() == [[3.0, -4.0], [1.5, -2.0]]


def test_per_channel_bitwidth_and_zeropt():
    x = np.array([[100.0, -100.0], [100.0, -100.0]], dtype=np.float32)
    y = quant(x, zeropt=np.array([[0.0], [1.0]]), bitwidth=np.array([[2.0], [4.0]]))
    # row 0: 2-bit [-2, 1]; row 1: 4-bit [-8, 7] then minus the zero-point 1
    assert y.tolist() == [[1.0, -2.0], [6.0, -9.0]]


def test_zero_point_shifts_the_range():
    # unsigned 8-bit, zero-point 128, scale 0.5: representable values are -64 .. 63.5
    y = quant([-70.0, -64.0, -0.2, 0.0, 10.3, 63.5, 64.0, 80.0], scale=0.5, zeropt=128, bitwidth=8, signed=0)
    assert y.tolist() == [-64.0, -64.0, -0.0, 0.0, 10.5, 63.5, 63.5, 63.5]


def test_float_and_int_bitwidth_agree():
    x = np.linspace(-20, 20, 81)
    for bw in (np.float32(4.0), np.int32(4), np.int64(4), np.array([4.0]), 4):
        assert quant(x, bitwidth=bw).tolist() == quant(x, bitwidth=4).tolist()
    assert quant([100.0, -100.0], bitwidth=np.float32(4.0)).tolist() == [7.0, -8.0]


# -- validation -----------------------------------------------------------------


@pytest.mark.parametrize("bad", [0, -1, 2.5, np.nan, np.inf, 65, np.array([4.0, 0.0])])
def test_invalid_bitwidth_names_node(bad):
    with pytest.raises(InvalidAttributeError, match=NODE) as info:
        quant([1.0, 2.0], bitwidth=bad)
    assert "bitwidth" in str(info.value)


@pytest.mark.parametrize("bad", [0.0, np.nan, np.inf])
def test_invalid_scale_names_node(bad):
    with pytest.raises(InvalidAttributeError, match=NODE):
        quant([1.0], scale=bad)


def test_scale_that_does_not_broadcast():
    with pytest.raises(InvalidAttributeError, match=NODE):
        quant(np.zeros((2, 3)), scale=np.ones((3, 1)))
    with pytest.raises(InvalidAttributeError, match=NODE):  # would enlarge the output
        quant(np.zeros(3), scale=np.ones((2, 3)))


@pytest.mark.parametrize(
    "attrs",
    [
        {"rounding_mode": "NEAREST"},
        {"rounding_mode": 3},
        {"signed": 2},
        {"signed": "1"},
        {"narrow": 1.0},
    ],
)
def test_invalid_attributes_name_node(attrs):
    with pytest.raises(InvalidAttributeError, match=NODE):
        make_ctx(**attrs)


# -- datatypes and types ----------------------------------------------------------


def infos(scale, zeropt, bits):
    x = TensorInfo(dtype=ir.DataType.FLOAT, shape=ir.Shape([2, 3]))
    wrap = lambda v: TensorInfo(value=None if v is None else np.asarray(v, dtype=np.float32))  # noqa: E731
    return [x, wrap(scale), wrap(zeropt), wrap(bits)]


@pytest.mark.parametrize(
    ("attrs", "scale", "zeropt", "bits", "expected"),
    [
        ({}, 1.0, 0.0, 4, "INT4"),
        ({"narrow": 1}, 1.0, 0.0, 4, "INT4"),
        ({"signed": 0}, 1.0, 0.0, 8, "UINT8"),
        ({}, [1.0, 1.0], 0.0, 3, "INT3"),
        ({}, 0.5, 0.0, 4, "SCALEDINT<4>"),
        ({"signed": 0}, 1.0, 3.0, 4, "SCALEDINT<4>"),
        ({}, None, 0.0, 6, "SCALEDINT<6>"),
        ({}, 1.0, 0.0, None, None),
    ],
)
def test_infer_datatypes(attrs, scale, zeropt, bits, expected):
    (got,) = IntQuant.infer_datatypes(make_ctx(**attrs), infos(scale, zeropt, bits))
    assert got == (None if expected is None else DataType.parse(expected))


def test_infer_datatypes_rejects_bad_constant_bitwidth():
    with pytest.raises(InvalidAttributeError, match=NODE):
        IntQuant.infer_datatypes(make_ctx(), infos(1.0, 0.0, 2.5))


def test_infer_types_like_x():
    (out,) = IntQuant.infer_types(make_ctx(), infos(1.0, 0.0, 4))
    assert out.dtype == ir.DataType.FLOAT and list(out.shape) == [2, 3]


@pytest.mark.parametrize("domain", ["qonnx.custom_op.general", "onnx.brevitas", "finn.custom_op.general"])
@pytest.mark.parametrize("op_type", ["Quant", "IntQuant"])
def test_registered_under_both_names(domain, op_type):
    assert get_op(domain, op_type, 2) is IntQuant


# -- properties --------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    x=st.lists(st.floats(-1e4, 1e4, width=32), min_size=1, max_size=20),
    scale=st.sampled_from([2.0**-6, 0.1, 0.37, 1.0, 3.0]),
    bits=st.integers(2, 12),
    signed=st.sampled_from([0, 1]),
)
def test_property_on_grid_and_nearest(x, scale, bits, signed):
    x = np.asarray(x, dtype=np.float32)
    y = quant(x, scale=scale, bitwidth=bits, signed=signed)
    lo, hi = spec_range(bool(signed), False, bits)
    q = y.astype(np.float64) / np.float64(np.float32(scale))
    assert np.allclose(q, np.round(q), atol=1e-3)
    assert np.all(q >= lo - 1e-3) and np.all(q <= hi + 1e-3)
    inside = (x / np.float32(scale) >= lo) & (x / np.float32(scale) <= hi)
    err = np.abs(y[inside].astype(np.float64) - x[inside])
    # half a step, plus float32 rounding of x / scale and of q * scale
    assert np.all(err <= 0.5 * np.float32(scale) * (1 + 1e-6) + 2e-7 * np.abs(x[inside]) + 1e-9)


# -- through the executor ----------------------------------------------------------


def test_executor_runs_quant_alias_in_brevitas_domain():
    node = helper.make_node(
        "Quant", ["x", "s", "z", "b"], ["y"], name="q_exec", domain="onnx.brevitas",
        signed=0, narrow=0, rounding_mode="floor",
    )
    graph = helper.make_graph(
        [node], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])],
        initializer=[
            helper.make_tensor("s", TensorProto.FLOAT, [], [0.5]),
            helper.make_tensor("z", TensorProto.FLOAT, [], [0.0]),
            helper.make_tensor("b", TensorProto.FLOAT, [], [3.0]),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    out = execute(ir.from_proto(model), {"x": np.array([-1.0, 0.7, 1.3, 9.0], np.float32)})
    assert out["y"].tolist() == [0.0, 0.5, 1.0, 3.5]


def test_executor_error_names_node():
    node = helper.make_node(
        "IntQuant", ["x", "s", "z", "b"], ["y"], name="bad_quant", domain="qonnx.custom_op.general",
        rounding_mode="SIDEWAYS",
    )
    graph = helper.make_graph(
        [node], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
        initializer=[
            helper.make_tensor("s", TensorProto.FLOAT, [], [1.0]),
            helper.make_tensor("z", TensorProto.FLOAT, [], [0.0]),
            helper.make_tensor("b", TensorProto.FLOAT, [], [4.0]),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    with pytest.raises(InvalidAttributeError, match="bad_quant"):
        execute(ir.from_proto(model), {"x": np.zeros(2, np.float32)})


# -- Brevitas reference outputs ----------------------------------------------------

_SHARED = shared_dir()
BREVITAS = (_SHARED / "models" / "brevitas") if _SHARED is not None else Path("/nonexistent/shared/models/brevitas")
MODELS = [
    "seed_linear_default",
    "seed_linear_w3_relu4",
    "seed_linear_relu_perchannel",
    "asymmetric_zero_point",
    "binary_ternary",
    "trunc_avgpool_floor",
    "fp8_ocp",
]


def _tolerance(meta: dict, ref: np.ndarray) -> np.ndarray | float:
    """One output quantization step: the output quantizer's step when the output is an
    IntQuant tensor, one E4M3/E5M2 mantissa step (relative 2**-2) for a FloatQuant
    output, float32 accumulation noise otherwise."""
    if meta.get("output_quant_step"):
        return float(meta["output_quant_step"])
    if meta.get("output_quant_tensor_type") == "FloatQuantTensor":
        return np.abs(ref) * 2.0**-2
    return 1e-5 * float(np.max(np.abs(ref))) + 1e-7


@pytest.mark.shared
@pytest.mark.skipif(not BREVITAS.exists(), reason="shared Brevitas corpus (../shared/models/brevitas) not present")
@pytest.mark.parametrize("name", MODELS)
def test_brevitas_reference(name):
    folder = BREVITAS / name
    proto = onnx.load(folder / "qonnx.onnx")
    io = np.load(folder / "io.npz")
    meta = json.loads((folder / "meta.json").read_text())
    model = ir.from_proto(proto)
    initialised = set(model.graph.initializers)
    data_input = next(v.name for v in model.graph.inputs if v.name not in initialised)
    out = execute(model, {data_input: io["input"]})
    got = out[model.graph.outputs[0].name]
    ref = io["output"]
    assert got.shape == ref.shape and got.dtype == ref.dtype
    assert np.all(np.abs(got.astype(np.float64) - ref) <= _tolerance(meta, ref))


# -- the op's other rules: parameter legality, raising from Q/DQ -----------------------------


def test_check_params_takes_plain_arrays():
    attrs = IntQuant.resolve_attributes({"signed": 1, "narrow": 1}, "n")
    ok = {"scale": np.float32(0.5), "zeropt": np.float32(0), "bitwidth": np.float32(4)}
    assert IntQuant.check_params(attrs, ok, (1, 8)) == []
    bad = {"scale": np.float32(0), "zeropt": np.float32(9), "bitwidth": np.float32(4)}
    messages = [p.message for p in IntQuant.check_params(attrs, bad, (1, 8))]
    assert messages[0] == "scale must be finite and > 0, got 0"
    assert messages[1].startswith("zeropt must lie in the signed narrow integer range [-7, 7]")
    one_bit = IntQuant.check_params(attrs, {"bitwidth": np.float32(1)}, None)
    assert [p.severity for p in one_bit] == ["error"] and "single value" in one_bit[0].message
    wide = IntQuant.check_params(attrs, {"scale": np.ones(3, np.float32)}, (1, 8))
    assert [p.message for p in wide] == ["scale of shape (3,) does not broadcast to X's shape (1, 8)"]


def test_raise_rule_gives_quant_for_integer_containers():
    from qonnx_tools.decline import Decline
    from qonnx_tools.lowering import QdqChain

    chain = QdqChain(np.dtype(np.uint8), (0, 255), 0.0, 15.0, 1, None, True)
    raised = IntQuant.raise_qdq(chain)
    assert (raised.op, raised.op_type) == (IntQuant, "Quant")
    assert raised.attrs == {"signed": 0, "narrow": 0, "rounding_mode": "ROUND"}
    assert float(raised.params["bitwidth"]) == 4.0 and float(raised.zeropt) == 0.0
    odd = IntQuant.raise_qdq(QdqChain(np.dtype(np.int8), (-128, 127), -3.0, 5.0, 1, None, True))
    assert isinstance(odd, Decline) and odd.reason == "integer range [-3, 5] is no QONNX Quant range"
    assert IntQuant.raise_qdq(QdqChain(np.dtype(np.float16), None, -np.inf, np.inf, 0, None, True)) is None
