"""Tests of qonnx_tools.datatypes.

Expected values are derived here from the datatype definitions (powers of two,
enumerated minifloat codes), never from the code under test.
"""

from __future__ import annotations

import dataclasses
import math
import warnings

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qonnx_tools.datatypes import (
    BFLOAT16,
    BINARY,
    BIPOLAR,
    FLOAT16,
    FLOAT32,
    TERNARY,
    DataType,
    numpy_container,
    smallest_int_type,
)
from qonnx_tools.errors import InvalidDataTypeError

# --------------------------------------------------------------------------- strategies


def _minifloat_biases(e: int, m: int) -> st.SearchStrategy[int]:
    # every value must be a float64: largest exponent <= 1023, smallest subnormal >= 2**-1074
    lo = (1 << e) - 1 - 1023
    hi = 1075 - m
    return st.integers(min_value=lo, max_value=hi)


minifloats = st.integers(1, 11).flatmap(
    # with e = 11 a mantissa of 52 bits leaves no bias satisfying both bounds
    lambda e: st.integers(0, min(52, 2099 - 2**e)).flatmap(
        lambda m: _minifloat_biases(e, m).map(lambda b: DataType.minifloat(e, m, b))
    )
)
all_types = st.one_of(
    st.builds(DataType.int, st.integers(1, 64), st.booleans()),
    st.integers(1, 64).flatmap(lambda w: st.integers(1, w).map(lambda i: DataType.fixed(w, i))),
    st.builds(DataType.scaled_int, st.integers(1, 64)),
    minifloats,
    st.sampled_from([FLOAT32, FLOAT16, BFLOAT16, BIPOLAR, BINARY, TERNARY]),
)

SAMPLE_TYPES = [
    DataType.int(1),
    DataType.int(1, signed=False),
    DataType.int(4),
    DataType.int(64),
    DataType.int(64, signed=False),
    BIPOLAR,
    BINARY,
    TERNARY,
    DataType.fixed(8, 3),
    DataType.scaled_int(8),
    FLOAT32,
    FLOAT16,
    BFLOAT16,
    DataType.minifloat(4, 3, 7),
]

# --------------------------------------------------------------------------- integers


@pytest.mark.parametrize("n", range(1, 17))
def test_signed_int_range_formula(n: int) -> None:
    dt = DataType.parse(f"INT{n}")
    assert dt.name == str(dt) == f"INT{n}"
    assert (dt.min, dt.max) == (-(2 ** (n - 1)), 2 ** (n - 1) - 1)
    assert dt.bitwidth == n
    assert dt.signed is True
    assert dt.is_integer and not dt.is_float and not dt.is_fixed_point
    assert dt.step == 1


@pytest.mark.parametrize("n", range(1, 17))
def test_unsigned_int_range_formula(n: int) -> None:
    dt = DataType.parse(f"UINT{n}")
    assert dt.name == f"UINT{n}"
    assert (dt.min, dt.max) == (0, 2**n - 1)
    assert dt.bitwidth == n
    assert dt.signed is False
    assert dt.is_integer
    assert dt.step == 1


@pytest.mark.parametrize(
    ("name", "lo", "hi"),
    [
        ("INT4", -8, 7),
        ("UINT3", 0, 7),
        ("INT8", -128, 127),
        ("UINT8", 0, 255),
        ("INT1", -1, 0),
        ("UINT1", 0, 1),
        ("INT64", -9223372036854775808, 9223372036854775807),
        ("UINT64", 0, 18446744073709551615),
    ],
)
def test_int_literal_ranges(name: str, lo: int, hi: int) -> None:
    dt = DataType.parse(name)
    assert dt.min == lo and dt.max == hi
    assert type(dt.min) is int and type(dt.max) is int


def test_int1_and_uint1_value_sets() -> None:
    assert DataType.int(1).allowed([-1, 0, 1]).tolist() == [True, True, False]
    assert DataType.int(1, signed=False).allowed([-1, 0, 1]).tolist() == [False, True, True]


def test_int4_allowed() -> None:
    values = np.array([-9, -8, -1, 0, 7, 8, 0.5, -7.5])
    assert DataType.parse("INT4").allowed(values).tolist() == [
        False, True, True, True, True, False, False, False
    ]


@given(bits=st.integers(1, 64), signed=st.booleans(), value=st.integers(-(2**66), 2**66))
def test_int_allowed_python_ints(bits: int, signed: bool, value: int) -> None:
    lo, hi = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
    assert DataType.int(bits, signed).allowed(value) is (lo <= value <= hi)


def test_int64_extremes() -> None:
    i64, u64 = DataType.int(64), DataType.int(64, signed=False)
    assert i64.allowed(2**63 - 1) and i64.allowed(-(2**63))
    assert not i64.allowed(2**63) and not i64.allowed(-(2**63) - 1)
    assert u64.allowed(2**64 - 1) and u64.allowed(0)
    assert not u64.allowed(2**64) and not u64.allowed(-1)
    # float64(2**63 - 1) is 2**63, which INT64 does not hold
    assert not i64.allowed(float(2**63 - 1))
    assert i64.allowed(-(2.0**63))
    assert u64.allowed(2.0**63) and not u64.allowed(2.0**64)

    info64 = np.iinfo(np.int64)
    a = np.array([info64.min, -1, 0, info64.max], dtype=np.int64)
    assert i64.allowed(a).tolist() == [True, True, True, True]
    assert u64.allowed(a).tolist() == [False, False, True, True]
    assert DataType.int(63).allowed(a).tolist() == [False, True, True, False]

    b = np.array([0, 2**63 - 1, 2**63, 2**64 - 1], dtype=np.uint64)
    assert u64.allowed(b).tolist() == [True, True, True, True]
    assert i64.allowed(b).tolist() == [True, True, False, False]
    assert DataType.int(8, signed=False).allowed(b).tolist() == [True, False, False, False]


def test_integer_dtype_arrays_on_float_types() -> None:
    # 2**53 + 1 is not a float64, so it is in no float format; 2**24 + 1 is not a float32
    a = np.array([2**53, 2**53 + 1, 2**24 + 1], dtype=np.int64)
    assert DataType.fixed(64, 64).allowed(a).tolist() == [True, False, True]
    assert FLOAT32.allowed(a).tolist() == [True, False, False]  # 2**53 is a power of two
    assert FLOAT32.allowed(np.array([2**24, 2**24 + 1, -(2**24)], dtype=np.int64)).tolist() == [
        True, False, True
    ]
    assert not FLOAT32.allowed(2**53 + 1)
    assert not FLOAT32.allowed(10**400)
    assert FLOAT16.allowed(np.array([1, 2049], dtype=np.int16)).tolist() == [True, False]


def test_bool_inputs() -> None:
    assert BINARY.allowed(np.array([True, False])).tolist() == [True, True]
    assert BIPOLAR.allowed(np.array([True, False])).tolist() == [True, False]
    assert DataType.int(4).allowed(True) is True


def test_special_value_sets() -> None:
    probe = np.array([-2, -1, -0.5, 0, 0.5, 1, 2])
    assert BIPOLAR.allowed(probe).tolist() == [False, True, False, False, False, True, False]
    assert BINARY.allowed(probe).tolist() == [False, False, False, True, False, True, False]
    assert TERNARY.allowed(probe).tolist() == [False, True, False, True, False, True, False]
    assert (BIPOLAR.bitwidth, BIPOLAR.signed, BIPOLAR.min, BIPOLAR.max, BIPOLAR.step) == (
        1, True, -1, 1, 2
    )
    assert (BINARY.bitwidth, BINARY.signed, BINARY.min, BINARY.max, BINARY.step) == (
        1, False, 0, 1, 1
    )
    assert (TERNARY.bitwidth, TERNARY.signed, TERNARY.min, TERNARY.max, TERNARY.step) == (
        2, True, -1, 1, 1
    )
    for dt in (BIPOLAR, BINARY, TERNARY):
        assert dt.is_integer and not dt.is_float and not dt.is_fixed_point


def test_special_types_differ_from_same_valued_ints() -> None:
    assert BINARY != DataType.int(1, signed=False)
    assert BIPOLAR != DataType.int(1)
    assert len({BINARY, BIPOLAR, TERNARY, DataType.int(1), DataType.int(1, False)}) == 5


# --------------------------------------------------------------------------- fixed point


def test_fixed_8_3() -> None:
    dt = DataType.parse("FIXED<8,3>")
    assert dt == DataType.fixed(8, 3)
    assert dt.bitwidth == 8 and dt.signed
    assert dt.min == -4.0 and dt.max == 4.0 - 2.0**-5 == 3.96875
    assert dt.step == 2.0**-5
    assert dt.is_fixed_point and not dt.is_integer and not dt.is_float
    assert dt.int_bits == 3 and dt.frac_bits == 5
    values = [3.96875, 4.0, -4.0, -4.03125, 0.03125, 0.015625, 1.5, 0.0, 0.1]
    assert dt.allowed(np.array(values)).tolist() == [
        True, False, True, False, True, False, True, True, False
    ]


@given(
    w=st.integers(1, 53),
    data=st.data(),
)
def test_fixed_grid_property(w: int, data: st.DataObject) -> None:
    i = data.draw(st.integers(1, w))
    k = data.draw(st.integers(-(2 ** (w - 1)) - 3, 2 ** (w - 1) + 2))
    dt = DataType.fixed(w, i)
    step = 2.0 ** -(w - i)
    assert dt.min == -(2.0 ** (i - 1))
    assert dt.max == 2.0 ** (i - 1) - step
    x = k * step  # exact: |k| < 2**53 and step is a power of two
    assert dt.allowed(x) is (-(2 ** (w - 1)) <= k <= 2 ** (w - 1) - 1)
    assert dt.allowed(x + step / 2) is False


# --------------------------------------------------------------------------- scaled int


def test_scaledint() -> None:
    dt = DataType.parse("SCALEDINT<8>")
    assert dt == DataType.scaled_int(8)
    assert dt.bitwidth == 8 and dt.signed is True
    assert not dt.is_integer and not dt.is_float and not dt.is_fixed_point
    assert dt.min == -math.inf and dt.max == math.inf
    assert dt.step is None
    assert dt.allowed(np.array([0.0, -3.7, 1e30, 1e-300, 5])).all()
    assert not dt.allowed(np.array([np.nan, np.inf, -np.inf])).any()


# --------------------------------------------------------------------------- standard floats


def test_standard_float_properties() -> None:
    assert (FLOAT32.bitwidth, FLOAT16.bitwidth, BFLOAT16.bitwidth) == (32, 16, 16)
    assert FLOAT32.max == (2 - 2.0**-23) * 2.0**127
    assert FLOAT16.max == (2 - 2.0**-10) * 2.0**15 == 65504.0
    assert BFLOAT16.max == (2 - 2.0**-7) * 2.0**127
    for dt in (FLOAT32, FLOAT16, BFLOAT16):
        assert dt.min == -dt.max
        assert dt.signed and dt.is_float and not dt.is_integer and not dt.is_fixed_point
        assert dt.step is None
    assert (FLOAT16.exponent_bits, FLOAT16.mantissa_bits, FLOAT16.exponent_bias) == (5, 10, 15)
    assert (BFLOAT16.exponent_bits, BFLOAT16.mantissa_bits, BFLOAT16.exponent_bias) == (8, 7, 127)


def test_float16_allowed() -> None:
    assert FLOAT16.allowed(1 / 3) is False
    assert FLOAT16.allowed(0.5) is True
    assert FLOAT16.allowed(65504.0) is True
    assert FLOAT16.allowed(65505.0) is False
    assert FLOAT16.allowed(2.0**-24) is True  # smallest subnormal
    assert FLOAT16.allowed(2.0**-25) is False
    assert FLOAT16.allowed(1 + 2.0**-10) is True
    assert FLOAT16.allowed(1 + 2.0**-11) is False


def test_bfloat16_allowed() -> None:
    assert BFLOAT16.allowed(1 + 2.0**-8) is False
    assert BFLOAT16.allowed(1 + 2.0**-7) is True
    assert BFLOAT16.allowed(2.0**-133) is True  # smallest subnormal 2**(1-127-7)
    assert BFLOAT16.allowed(2.0**-134) is False
    assert BFLOAT16.allowed(np.array([1.5], dtype=ml_dtypes.bfloat16)).tolist() == [True]


def test_float32_allowed() -> None:
    assert FLOAT32.allowed(1 / 3) is False
    assert FLOAT32.allowed(1 + 2.0**-23) is True
    assert FLOAT32.allowed(1 + 2.0**-24) is False
    assert FLOAT32.allowed(2.0**-149) is True
    assert FLOAT32.allowed(2.0**-150) is False
    assert FLOAT32.allowed(2.0**128) is False
    assert FLOAT32.allowed(np.float32(0.1)) is True


# --------------------------------------------------------------------------- minifloats


def test_minifloat_4_3_7() -> None:
    dt = DataType.parse("FLOAT<4,3,7>")
    assert dt == DataType.minifloat(4, 3, 7) == DataType.minifloat(4, 3)
    assert dt.bitwidth == 8 and dt.signed and dt.is_float
    assert dt.max == (2 - 2.0**-3) * 2.0 ** (15 - 7) == 480.0
    assert dt.min == -480.0
    assert dt.step is None
    assert (dt.exponent_bits, dt.mantissa_bits, dt.exponent_bias) == (4, 3, 7)
    values = [0.5, 480.0, 481.0, 2.0**-9, 2.0**-10, 1.0625, 1.125, -480.0, 0.0, 3 * 2.0**-9]
    expected = [True, True, False, True, False, False, True, True, True, True]
    assert dt.allowed(np.array(values)).tolist() == expected


def test_minifloat_tiny_values_do_not_underflow_into_members() -> None:
    # FLOAT<1,0,-51> is {0, +-2**52}; a float64 subnormal must not round to a member
    dt = DataType.minifloat(1, 0, -51)
    assert dt.allowed(np.array([0.0, 2.0**52, 2.0**-1023, 5e-324, -(2.0**52)])).tolist() == [
        True, True, False, False, True
    ]


def test_huge_inputs_rejected_without_warnings() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for dt in SAMPLE_TYPES:
            expected = dt.kind.value == "SCALEDINT"
            assert dt.allowed(np.array([1e304, -1.7e308])).tolist() == [expected, expected]


def test_other_input_dtypes() -> None:
    assert DataType.int(4).allowed(np.array([-8, 7, 8], dtype=ml_dtypes.int4)).tolist() == [
        True, True, True
    ]
    assert DataType.int(3).allowed(np.array([-8, 3, 4], dtype=ml_dtypes.int4)).tolist() == [
        False, True, False
    ]
    # bfloat16(0.1) = 205 * 2**-11 fits float16's 11 significant bits; 99840 > 65504 does not
    bf = np.array([0.1, 1e5], dtype=ml_dtypes.bfloat16)
    assert bf.astype(np.float64).tolist() == [205 * 2.0**-11, 99840.0]
    assert FLOAT16.allowed(bf).tolist() == [True, False]
    ld = np.array([1, 1 + 2.0**-30], dtype=np.longdouble)
    assert FLOAT32.allowed(ld).tolist() == [True, False]


def test_minifloat_default_bias_prints_all_three() -> None:
    dt = DataType.parse("FLOAT<4,3>")
    assert str(dt) == "FLOAT<4,3,7>"
    assert str(DataType.minifloat(5, 2)) == "FLOAT<5,2,15>"
    assert str(DataType.minifloat(1, 0)) == "FLOAT<1,0,0>"


def _enumerate_minifloat(e: int, m: int, b: int) -> list[float]:
    """Every value of FLOAT<e,m,b> from its bit codes (no inf/NaN codes)."""
    values = set()
    for exp_code in range(2**e):
        for mant in range(2**m):
            if exp_code == 0:
                mag = (mant / 2**m) * 2.0 ** (1 - b)
            else:
                mag = (1 + mant / 2**m) * 2.0 ** (exp_code - b)
            values.update((mag, -mag))
    return sorted(values)


@settings(max_examples=60, deadline=None)
@given(e=st.integers(1, 4), m=st.integers(0, 4), b=st.integers(-4, 12))
def test_minifloat_matches_enumeration(e: int, m: int, b: int) -> None:
    dt = DataType.minifloat(e, m, b)
    values = _enumerate_minifloat(e, m, b)
    assert dt.bitwidth == 1 + e + m
    assert dt.max == values[-1] == (2 - 2.0**-m) * 2.0 ** (2**e - 1 - b)
    assert dt.min == values[0]
    arr = np.array(values)
    assert dt.allowed(arr).all()
    midpoints = (arr[1:] + arr[:-1]) / 2
    assert not dt.allowed(midpoints).any()
    smallest = 2.0 ** (1 - b - m)
    assert dt.allowed(smallest) and not dt.allowed(smallest / 2)
    top = values[-1]
    assert not dt.allowed(top + 2.0 ** (2**e - 1 - b - m))  # one step beyond max


# --------------------------------------------------------------------------- parsing


@given(all_types)
def test_parse_round_trip(dt: DataType) -> None:
    assert DataType.parse(str(dt)) == dt
    assert DataType.parse(dt.name) == dt
    assert hash(DataType.parse(dt.name)) == hash(dt)
    assert DataType[dt.name] == dt


@given(all_types, st.sampled_from(["", " ", "  ", "\t"]))
def test_parse_tolerates_whitespace(dt: DataType, pad: str) -> None:
    spaced = dt.name.replace("<", "<" + pad).replace(",", pad + "," + pad).replace(">", pad + ">")
    assert DataType.parse(f"{pad} {spaced}\n") == dt


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("INT4", DataType.int(4)),
        ("UINT2", DataType.int(2, signed=False)),
        ("BIPOLAR", BIPOLAR),
        ("BINARY", BINARY),
        ("TERNARY", TERNARY),
        ("FIXED<8,3>", DataType.fixed(8, 3)),
        ("SCALEDINT<8>", DataType.scaled_int(8)),
        ("FLOAT32", FLOAT32),
        ("FLOAT16", FLOAT16),
        ("BFLOAT16", BFLOAT16),
        ("FLOAT<4,3,7>", DataType.minifloat(4, 3, 7)),
        (" FIXED< 8 , 3 > ", DataType.fixed(8, 3)),
        ("FLOAT<5, 2>", DataType.minifloat(5, 2, 15)),
        ("FLOAT<4,3,-2>", DataType.minifloat(4, 3, -2)),
        (b"INT8", DataType.int(8)),
    ],
)
def test_parse_examples(text: str | bytes, expected: DataType) -> None:
    assert DataType.parse(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "INT0",
        "INT65",
        "UINT0",
        "UINT65",
        "FIXED<3,5>",
        "FIXED<8,0>",
        "FIXED<0,0>",
        "SCALEDINT<0>",
        "FLOAT<0,3,1>",
        "FLOAT<0,3>",
        "FLOAT<12,3>",
        "FLOAT<4,53,7>",
        "FOO",
        "",
        "int4",
        "Int4",
        "INT",
        "INT-4",
        "INT4.0",
        "INT 4",
        "FIXED<8>",
        "FIXED<8,3,1>",
        "FLOAT<4,3,7,1>",
        "FLOAT<4,3,7",
        "bipolar",
        "INT04",
        "INT٤",  # Arabic-Indic digit four
        "INT" + "9" * 200,
        "FLOAT<4,3,-99999999999999>",
        "line1\nline2",
    ],
)
def test_parse_invalid(text: str) -> None:
    with pytest.raises(InvalidDataTypeError) as info:
        DataType.parse(text)
    message = str(info.value)
    assert "\n" not in message
    assert repr(text)[:40] in message


def test_parse_rejects_non_strings() -> None:
    with pytest.raises(TypeError):
        DataType.parse(4)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "build",
    [
        lambda: DataType.int(0),
        lambda: DataType.int(65, signed=False),
        lambda: DataType.fixed(4, 5),
        lambda: DataType.scaled_int(0),
        lambda: DataType.minifloat(0, 3, 1),
        lambda: DataType.minifloat(11, 3, -10),  # largest exponent 2037 overflows float64
        lambda: DataType.int(4.0),  # type: ignore[arg-type]
        lambda: DataType.int(True),
    ],
)
def test_constructors_reject_invalid(build) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidDataTypeError):
        build()


def test_constructors_accept_numpy_ints() -> None:
    assert DataType.int(np.int64(4)) == DataType.int(4)
    assert type(DataType.int(np.int32(4)).bitwidth) is int


# --------------------------------------------------------------------------- value class


def test_immutable_and_hashable() -> None:
    dt = DataType.int(4)
    with pytest.raises(dataclasses.FrozenInstanceError):
        dt.params = (5,)  # type: ignore[misc]
    table = {DataType.int(4): "a", DataType.parse("INT4"): "b"}
    assert len(table) == 1
    assert repr(dt) == "DataType('INT4')"


@given(all_types)
def test_kind_flags_are_consistent(dt: DataType) -> None:
    flags = [dt.is_integer, dt.is_fixed_point, dt.is_float]
    assert sum(flags) <= 1
    name = dt.name
    assert dt.is_fixed_point is name.startswith("FIXED<")
    assert dt.is_float is (name.startswith("FLOAT") or name == "BFLOAT16")
    assert dt.is_integer is (
        name.startswith(("INT", "UINT")) or name in ("BIPOLAR", "BINARY", "TERNARY")
    )
    assert isinstance(dt.bitwidth, int) and dt.bitwidth >= 1
    # INT1 and FIXED<1,1> are {-1, 0}: a signed type's max may be 0
    assert dt.min < 0 <= dt.max if dt.signed else dt.min == 0 < dt.max


# --------------------------------------------------------------------------- vectorisation


@pytest.mark.parametrize("dt", SAMPLE_TYPES, ids=str)
def test_allowed_shapes_and_scalars(dt: DataType) -> None:
    arr = np.zeros((2, 3, 4))
    arr[0, 1, 2] = 0.3
    out = dt.allowed(arr)
    assert isinstance(out, np.ndarray) and out.dtype == np.bool_ and out.shape == (2, 3, 4)
    assert type(dt.allowed(1)) is bool
    assert type(dt.allowed(1.0)) is bool
    assert type(dt.allowed(np.float32(1.0))) is bool
    assert type(dt.allowed(np.int8(1))) is bool
    assert dt.allowed([[1, 1], [1, 1]]).shape == (2, 2)
    assert dt.allowed(np.array(1.0)).shape == ()
    assert dt.allowed(np.array([], dtype=np.float32)).shape == (0,)


@pytest.mark.parametrize("dt", SAMPLE_TYPES, ids=str)
def test_non_finite_rejected(dt: DataType) -> None:
    bad = np.array([np.nan, np.inf, -np.inf])
    assert not dt.allowed(bad).any()
    assert not dt.allowed(bad.astype(np.float32)).any()
    assert not dt.allowed(bad.astype(np.float16)).any()
    assert dt.allowed(float("nan")) is False
    assert dt.allowed(math.inf) is False


@given(all_types)
def test_non_finite_rejected_everywhere(dt: DataType) -> None:
    assert not dt.allowed(np.array([np.nan, np.inf, -np.inf])).any()


@given(all_types)
def test_bounds_are_members(dt: DataType) -> None:
    if math.isinf(dt.min) or (dt.is_fixed_point and dt.bitwidth > 53):
        return  # SCALEDINT is unbounded; wide FIXED maxima are not float64-exact
    assert dt.allowed(dt.min) and dt.allowed(dt.max)


def test_allowed_rejects_non_numeric() -> None:
    with pytest.raises(TypeError):
        DataType.int(4).allowed(np.array(["a"]))


# --------------------------------------------------------------------------- helpers


@pytest.mark.parametrize(
    ("lo", "hi", "name"),
    [
        (0, 7, "UINT3"),
        (-1, 0, "INT1"),
        (-8, 7, "INT4"),
        (-9, 7, "INT5"),
        (-8, 8, "INT5"),
        (0, 0, "UINT1"),
        (0, 1, "UINT1"),
        (-1, 1, "INT2"),
        (0, 8, "UINT4"),
        (-5, -3, "INT4"),
        (0, 255, "UINT8"),
        (0, 256, "UINT9"),
        (-(2**63), 2**63 - 1, "INT64"),
        (0, 2**64 - 1, "UINT64"),
        (np.int64(-3), np.int64(3), "INT3"),
        (0.0, 3.0, "UINT2"),
    ],
)
def test_smallest_int_type(lo: int, hi: int, name: str) -> None:
    assert smallest_int_type(lo, hi) == DataType.parse(name)


@given(st.integers(-(2**63), 2**64 - 1), st.integers(-(2**63), 2**64 - 1))
def test_smallest_int_type_is_tight(a: int, b: int) -> None:
    lo, hi = min(a, b), max(a, b)
    if lo < 0 and hi > 2**63 - 1:
        with pytest.raises(InvalidDataTypeError):
            smallest_int_type(lo, hi)
        return
    dt = smallest_int_type(lo, hi)
    n = dt.bitwidth
    assert dt.signed is (lo < 0)
    if dt.signed:
        assert -(2 ** (n - 1)) <= lo and hi <= 2 ** (n - 1) - 1
        assert n == 1 or lo < -(2 ** (n - 2)) or hi > 2 ** (n - 2) - 1
    else:
        assert hi <= 2**n - 1
        assert n == 1 or hi > 2 ** (n - 1) - 1


@pytest.mark.parametrize(
    ("lo", "hi", "error"),
    [
        (3, 2, ValueError),
        (0.5, 2, ValueError),
        (0, math.inf, ValueError),
        (-1, 2**63, InvalidDataTypeError),
        (0, 2**64, InvalidDataTypeError),
        (-(2**63) - 1, 0, InvalidDataTypeError),
    ],
)
def test_smallest_int_type_errors(lo: float, hi: float, error: type[Exception]) -> None:
    with pytest.raises(error):
        smallest_int_type(lo, hi)


@pytest.mark.parametrize(
    ("name", "container"),
    [
        ("INT1", np.int8),
        ("INT8", np.int8),
        ("INT9", np.int16),
        ("INT32", np.int32),
        ("INT33", np.int64),
        ("INT64", np.int64),
        ("UINT1", np.uint8),
        ("UINT8", np.uint8),
        ("UINT16", np.uint16),
        ("UINT17", np.uint32),
        ("UINT64", np.uint64),
        ("BIPOLAR", np.int8),
        ("TERNARY", np.int8),
        ("BINARY", np.uint8),
        ("FIXED<8,3>", np.float32),
        ("FIXED<24,1>", np.float32),
        ("FIXED<25,1>", np.float64),
        ("SCALEDINT<8>", np.float32),
        ("SCALEDINT<32>", np.float64),
        ("FLOAT32", np.float32),
        ("FLOAT16", np.float16),
        ("BFLOAT16", np.float32),
        ("FLOAT<4,3,7>", np.float32),
        ("FLOAT<5,2,15>", np.float32),
        ("FLOAT<8,22,128>", np.float32),  # max exponent 127, smallest subnormal 2**-149
        ("FLOAT<8,23,127>", np.float64),  # max exponent 128: no inf code, exceeds float32
        ("FLOAT<8,22,129>", np.float64),  # smallest subnormal 2**-150
        ("FLOAT<9,3>", np.float64),
    ],
)
def test_numpy_container(name: str, container: type) -> None:
    dt = numpy_container(DataType.parse(name))
    assert isinstance(dt, np.dtype)
    assert dt == np.dtype(container)


@given(st.integers(1, 64), st.booleans())
def test_integer_container_holds_range(bits: int, signed: bool) -> None:
    dt = DataType.int(bits, signed)
    info = np.iinfo(numpy_container(dt))
    lo, hi = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
    assert info.min <= lo and hi <= info.max
    assert info.bits == next(b for b in (8, 16, 32, 64) if bits <= b)


@settings(max_examples=30, deadline=None)
@given(e=st.integers(1, 4), m=st.integers(0, 4), b=st.integers(-4, 12))
def test_minifloat_container_is_exact(e: int, m: int, b: int) -> None:
    dt = DataType.minifloat(e, m, b)
    values = np.array(_enumerate_minifloat(e, m, b))
    stored = values.astype(numpy_container(dt)).astype(np.float64)
    assert np.array_equal(stored, values)
