"""Trunc versions 1 and 2: hand-computed cases per trunc_v1.md / trunc_v2.md."""

from __future__ import annotations

import numpy as np
import pytest

from qonnx_tools._ir import ir
from qonnx_tools.datatypes import DataType
from qonnx_tools.errors import InvalidAttributeError
from qonnx_tools.node_context import NodeContext
from qonnx_tools.ops import get_op
from qonnx_tools.ops.base import TensorInfo
from qonnx_tools.ops.trunc import Trunc, TruncV2

NODE = "trunc_node_2"


def make_ctx(op, **attrs) -> NodeContext:
    where = f"node {NODE!r} (Trunc)"
    return NodeContext(NODE, "Trunc", "qonnx.custom_op.general", op.since_version, op.resolve_attributes(attrs, where))


def f32(v):
    return np.asarray(v, dtype=np.float32)


def trunc_v1(x, scale=1.0, zeropt=0.0, in_bits=8, out_bits=4, **attrs):
    return Trunc.execute(make_ctx(Trunc, **attrs), f32(x), f32(scale), f32(zeropt), f32(in_bits), f32(out_bits))


def trunc_v2(x, scale=1.0, zeropt=0.0, in_bits=8, out_scale=16.0, out_bits=4, **attrs):
    return TruncV2.execute(
        make_ctx(TruncV2, **attrs), f32(x), f32(scale), f32(zeropt), f32(in_bits), f32(out_scale), f32(out_bits)
    )


def test_versions_registered():
    assert get_op("qonnx.custom_op.general", "Trunc", 1) is Trunc
    assert get_op("finn.custom_op.general", "Trunc", 2) is TruncV2
    assert get_op("qonnx.custom_op.general", "Trunc", 5) is TruncV2
    assert get_op("onnx.brevitas", "Trunc", None) is TruncV2
    assert len(Trunc.inputs) == 5 and len(TruncV2.inputs) == 6


def test_default_rounding_is_floor_and_case_insensitive():
    assert make_ctx(Trunc).attrs["rounding_mode"] == "FLOOR"
    assert make_ctx(TruncV2, rounding_mode="floor").attrs["rounding_mode"] == "FLOOR"
    v2 = make_ctx(TruncV2).attrs
    assert v2["signed"] == 1 and v2["narrow"] == 0


# -- version 1 -------------------------------------------------------------------


def test_v1_8_to_4_bits_floor():
    v = np.arange(256)
    # v1 rescales the truncated integer with the input scale: floor(v / 16) * scale
    np.testing.assert_array_equal(trunc_v1(v), (v // 16).astype(np.float32))
    np.testing.assert_array_equal(trunc_v1(v * 0.5, scale=0.5), (v // 16 * 0.5).astype(np.float32))


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        # inputs / 16 are: 0.5, 1.5, 2.5, -0.5, -1.5, 1.4375, 1.5625
        ("FLOOR", [0, 1, 2, -1, -2, 1, 1]),
        ("CEIL", [1, 2, 3, 0, -1, 2, 2]),
        ("ROUND", [0, 2, 2, 0, -2, 1, 2]),
        ("DOWN", [0, 1, 2, 0, -1, 1, 1]),
        ("UP", [1, 2, 3, -1, -2, 2, 2]),
        ("HALF_UP", [1, 2, 3, -1, -2, 1, 2]),
        ("HALF_DOWN", [0, 1, 2, 0, -1, 1, 2]),
    ],
)
def test_v1_rounding_modes(mode, expected):
    y = trunc_v1([8, 24, 40, -8, -24, 23, 25], rounding_mode=mode)
    assert y.tolist() == expected


def test_v1_rounds_input_to_integer_first():
    # 15.6 is the integer 16 in float noise: 16 / 16 = 1 (flooring 15.6 / 16 would give 0)
    assert trunc_v1([15.6, 16.4, 31.4]).tolist() == [1.0, 1.0, 1.0]


def test_v1_zero_point_and_no_clamp():
    # (32 + 3) / 16 = 2.19 -> 2, minus zero-point 3 -> -1
    assert trunc_v1([32.0], zeropt=3.0).tolist() == [-1.0]
    # version 1 does not clamp: 10 bits of input into "4" bits
    assert trunc_v1([1023.0], in_bits=10, out_bits=4).tolist() == [15.0]
    assert trunc_v1([4096.0], in_bits=10, out_bits=4).tolist() == [64.0]


def test_v1_per_channel_scale():
    x = np.array([[160.0, 320.0], [80.0, 160.0]], dtype=np.float32)
    y = trunc_v1(x, scale=np.array([[1.0], [0.5]]), in_bits=8, out_bits=4)
    assert y.tolist() == [[10.0, 20.0], [5.0, 10.0]]


# -- version 2 -------------------------------------------------------------------


def test_v2_8_to_4_bits_with_output_scale():
    v = np.arange(256)
    y = trunc_v2(v, out_scale=16.0, signed=0)
    np.testing.assert_array_equal(y, (v // 16 * 16).astype(np.float32))


@pytest.mark.parametrize(
    ("signed", "narrow", "expected"),
    [
        (1, 0, [-128, -128, -16, 0, 112, 112]),  # [-8, 7] * 16
        (1, 1, [-112, -112, -16, 0, 112, 112]),  # [-7, 7] * 16
        (0, 0, [0, 0, 0, 0, 112, 192]),  # [0, 15] * 16
        (0, 1, [0, 0, 0, 0, 112, 192]),  # [0, 14] * 16
    ],
)
def test_v2_clamps_to_output_range(signed, narrow, expected):
    y = trunc_v2([-200, -128, -1, 0, 127, 200], out_scale=16.0, signed=signed, narrow=narrow)
    assert y.tolist() == expected


def test_v2_clamp_upper_bound():
    assert trunc_v2([255.0, 240.0, 239.0], out_scale=16.0, signed=0, narrow=1).tolist() == [224.0, 224.0, 224.0]
    assert trunc_v2([255.0, 240.0, 239.0], out_scale=16.0, signed=0, narrow=0).tolist() == [240.0, 240.0, 224.0]


@pytest.mark.parametrize(
    ("mode", "expected"),
    [("FLOOR", [0, 16, 32, -16, -32]), ("CEIL", [16, 32, 48, 0, -16]), ("ROUND", [0, 32, 32, 0, -32])],
)
def test_v2_rounding_modes(mode, expected):
    assert trunc_v2([8, 24, 40, -8, -24], rounding_mode=mode).tolist() == expected


def test_v2_zero_point_is_rescaled():
    # scale 1, out_scale 4: shift by 2 bits; zero-point 16 becomes 4 at the output
    # x=0: (0+16)/4 = 4 -> (4-4)*4 = 0;  x=5: 21/4 = 5.25 -> 5 -> (5-4)*4 = 4
    assert trunc_v2([0.0, 5.0, -16.0], zeropt=16.0, out_scale=4.0, out_bits=8).tolist() == [0.0, 4.0, -16.0]


def test_v2_shift_is_nearest_power_of_two():
    # out_scale / scale = 3.9 -> truncation by 4; the output uses out_scale itself
    assert trunc_v2([9.0], out_scale=3.9, out_bits=8).tolist() == [2 * np.float32(3.9)]


def test_v2_brevitas_avgpool_pattern():
    # AvgPool 2x2 of 4-bit unsigned values: scale s/4, out_scale s/16, 8 bits, exact average
    s = np.float32(0.25)
    sums = np.array([0, 1, 7, 33, 60], dtype=np.float32)  # sums of four 4-bit values
    x = sums * (s / 4)
    y = trunc_v2(x, scale=s / 4, in_bits=6, out_scale=s / 16, out_bits=8, signed=0)
    np.testing.assert_array_equal(y, x)


def test_v2_per_channel_out_scale():
    x = np.array([[64.0, 64.0], [64.0, 64.0]], dtype=np.float32)
    y = trunc_v2(x, out_scale=np.array([[16.0], [4.0]]), out_bits=8)
    assert y.tolist() == [[64.0, 64.0], [64.0, 64.0]]
    y = trunc_v2(x + 3, out_scale=np.array([[16.0], [4.0]]), out_bits=8)
    assert y.tolist() == [[64.0, 64.0], [64.0, 64.0]]


# -- validation and datatypes -------------------------------------------------------


@pytest.mark.parametrize("field", ["in_bits", "out_bits"])
@pytest.mark.parametrize("bad", [0, -3, 4.5, np.nan])
def test_invalid_bitwidths_name_node(field, bad):
    with pytest.raises(InvalidAttributeError, match=NODE):
        trunc_v1([1.0], **{field: bad})
    with pytest.raises(InvalidAttributeError, match=NODE):
        trunc_v2([1.0], **{field: bad})


def test_invalid_scales_name_node():
    with pytest.raises(InvalidAttributeError, match=NODE):
        trunc_v2([1.0], out_scale=-16.0)
    with pytest.raises(InvalidAttributeError, match=NODE):
        trunc_v2([1.0], scale=0.0)


@pytest.mark.parametrize("attrs", [{"rounding_mode": "TRUNCATE"}, {"rounding_mode": 1}, {"signed": 3}])
def test_invalid_attributes_name_node(attrs):
    with pytest.raises(InvalidAttributeError, match=NODE):
        make_ctx(TruncV2, **attrs)


def _infos(values):
    x = TensorInfo(dtype=ir.DataType.FLOAT, shape=ir.Shape([2]))
    return [x] + [TensorInfo(value=None if v is None else np.asarray(v, np.float32)) for v in values]


def test_infer_datatypes():
    assert TruncV2.infer_datatypes(make_ctx(TruncV2), _infos([0.5, 0.0, 8, 1.0, 4])) == [DataType.parse("INT4")]
    assert TruncV2.infer_datatypes(make_ctx(TruncV2, signed=0), _infos([0.5, 0.0, 8, 1.0, 4])) == [DataType.parse("UINT4")]
    assert TruncV2.infer_datatypes(make_ctx(TruncV2), _infos([0.5, 0.0, 8, 0.25, 4])) == [DataType.scaled_int(4)]
    assert TruncV2.infer_datatypes(make_ctx(TruncV2), _infos([0.5, 0.0, 8, 1.0, None])) == [None]
    assert Trunc.infer_datatypes(make_ctx(Trunc), _infos([1.0, 0.0, 8, 4])) == [DataType.scaled_int(4)]
    assert Trunc.infer_datatypes(make_ctx(Trunc), _infos([1.0, 0.0, 8, None])) == [None]


def test_check_params_in_below_out_bitwidth_is_an_error_in_v1_a_warning_in_v2():
    params = {"scale": np.float32(1), "zeropt": np.float32(0), "in_bitwidth": np.float32(4),
              "out_bitwidth": np.float32(8), "out_scale": np.float32(1)}
    v1 = Trunc.check_params(Trunc.resolve_attributes({}, "n"), params, None)
    v2 = TruncV2.check_params(TruncV2.resolve_attributes({}, "n"), params, None)
    assert [p.severity for p in v1] == ["error"] and "multiplies the integers" in v1[0].message
    assert [p.severity for p in v2] == ["warning"] and "nothing is truncated" in v2[0].message


def test_trunc_has_no_raise_rule():
    from qonnx_tools.lowering import QdqChain

    chain = QdqChain(np.dtype(np.int8), (-128, 127), -np.inf, np.inf, 0, None, True)
    assert Trunc.raise_qdq(chain) is None and TruncV2.raise_qdq(chain) is None
