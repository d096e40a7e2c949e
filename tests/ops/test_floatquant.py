"""FloatQuant: hand-checked E4M3 values, an enumeration oracle and ml_dtypes float8 casts."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

from qonnx_tools._ir import ir
from qonnx_tools.datatypes import DataType
from qonnx_tools.errors import InvalidAttributeError
from qonnx_tools.node_context import NodeContext
from qonnx_tools.ops import get_op
from qonnx_tools.ops.base import TensorInfo
from qonnx_tools.ops.floatquant import FloatQuant

NODE = "fq_node_9"
E4M3 = (4, 3, 7, 448.0)
E5M2 = (5, 2, 15, 57344.0)


def make_ctx(**attrs) -> NodeContext:
    where = f"node {NODE!r} (FloatQuant)"
    return NodeContext(NODE, "FloatQuant", "qonnx.custom_op.general", 1, FloatQuant.resolve_attributes(attrs, where))


def fq(x, scale=1.0, fmt=E4M3, **attrs) -> np.ndarray:
    e, m, b, mx = fmt
    args = [np.asarray(v, dtype=np.float32) for v in (x, scale, e, m, b, mx)]
    return FloatQuant.execute(make_ctx(**attrs), *args)


# -- an independent oracle: enumerate the format's codes -----------------------------


def enumerate_format(e: int, m: int, bias: int) -> tuple[np.ndarray, np.ndarray]:
    """Every non-negative value of sign/e/m/bias (all codes are numbers, subnormals included),
    with the parity of its mantissa code."""
    values, parity = [], []
    for exp_field in range(2**e):
        for mant in range(2**m):
            if exp_field == 0:
                v = mant / 2**m * 2.0 ** (1 - bias)
            else:
                v = (1 + mant / 2**m) * 2.0 ** (exp_field - bias)
            values.append(v)
            parity.append(mant % 2)
    order = np.argsort(values)
    return np.asarray(values)[order], np.asarray(parity)[order]


def oracle(x: np.ndarray, e: int, m: int, bias: int, max_val: float) -> np.ndarray:
    """Nearest representable value (ties to the even mantissa code), saturated at max_val.

    With no mantissa bits every code is "even"; ties then go to the value that is an
    even multiple of the lower neighbour's quantum: 2**(k+1) between 2**k and 2**(k+1)
    (significand 1.5 -> 2), but 0 between 0 and the smallest normal.
    """
    values, parity = enumerate_format(e, m, bias)
    out = []
    for v in np.asarray(x, dtype=np.float64).ravel():
        mag = abs(v)
        dist = np.abs(values - mag)
        best = np.flatnonzero(dist == dist.min())
        if len(best) == 1:
            pick = best[0]
        elif m == 0:
            pick = best[0] if values[best[0]] == 0 else best[-1]
        else:
            pick = next(i for i in best if parity[i] == 0)
        out.append(np.copysign(min(values[pick], max_val), v))
    return np.asarray(out).reshape(np.shape(x))


def log_uniform(rng, n, lo_exp, hi_exp):
    mags = 2.0 ** rng.uniform(lo_exp, hi_exp, n)
    return (mags * rng.choice([-1.0, 1.0], n)).astype(np.float32)


# -- hand-checked values ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("x", "expected"),
    [
        (0.3, 0.3125),  # 0.3 = 1.2 * 2**-2; step 2**-5: 9.6 -> 10 steps
        (1.0, 1.0),
        (1.0625, 1.0),  # halfway between 1.0 (mantissa 000) and 1.125 (001): to even
        (1.1875, 1.25),  # halfway between 1.125 (001) and 1.25 (010): to even
        (-1.1875, -1.25),
        (15.5, 16.0),  # halfway between 15 (111) and 16 (next binade, 000)
        (0.001, 2.0**-9),  # smallest subnormal 2**-9 = 0.001953125
        (0.0009, 0.0),  # below half the smallest subnormal
        (3 * 2.0**-10, 2 * 2.0**-9),  # tie between subnormals 1 and 2 (x 2**-9): to even
        (5 * 2.0**-10, 2 * 2.0**-9),  # tie between subnormals 2 and 3: to even
        (0.013, 0.013671875),  # 7 * 2**-9, largest subnormal
        (0.0155, 0.015625),  # rounds up into the smallest normal 2**-6
        (448.0, 448.0),
        (460.0, 448.0),
        (470.0, 448.0),  # would round to 480, clamped at max_val
        (1e6, 448.0),
        (-1e6, -448.0),
        (np.inf, 448.0),
        (-np.inf, -448.0),
        (0.0, 0.0),
    ],
)
def test_e4m3_hand_checked(x, expected):
    assert fq([x]).tolist() == [expected]


def test_nan_stays_nan():
    assert np.isnan(fq([np.nan]))[0]


def test_rounding_modes():
    assert fq([0.3, -0.3], rounding_mode="CEIL").tolist() == [0.3125, -0.28125]
    assert fq([0.3, -0.3], rounding_mode="floor").tolist() == [0.28125, -0.3125]
    assert fq([1.0625], rounding_mode="round").tolist() == [1.0]
    assert fq([1.0625], rounding_mode="HALF_EVEN").tolist() == [1.0]


def test_scale():
    # 0.6 / 2 = 0.3 -> 0.3125 -> * 2
    assert fq([0.6], scale=2.0).tolist() == [0.625]
    x = np.array([[0.3, 1000.0, 4000.0], [0.3, 1000.0, 4000.0]], dtype=np.float32)
    y = fq(x, scale=np.array([[1.0], [4.0]]))
    # row 1: 1000 / 4 = 250 -> 256 (step 16), 4000 / 4 = 1000 -> 448
    assert y.tolist() == [[0.3125, 448.0, 448.0], [0.3125, 1024.0, 1792.0]]


def test_max_val_below_format_maximum():
    # E4M3 codes reach 480; max_val 448 wins. A smaller max_val clamps further.
    assert fq([470.0, 300.0], fmt=(4, 3, 7, 256.0)).tolist() == [256.0, 256.0]
    # max_val above the format's own maximum does not extend it
    assert fq([1000.0], fmt=(4, 3, 7, 10000.0)).tolist() == [480.0]


def test_max_val_optional():
    y = FloatQuant.execute(make_ctx(), np.float32([1000.0, 0.3]), *(np.float32(v) for v in (1, 4, 3, 7)))
    assert y.tolist() == [480.0, 0.3125]


# -- oracles ------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", [E4M3, E5M2, (3, 2, 3, 28.0), (2, 1, 1, 6.0), (4, 0, 7, 2.0**8), (5, 3, 10, 1e9)])
def test_against_enumeration_oracle(fmt):
    e, m, b, mx = fmt
    rng = np.random.default_rng(sum(fmt[:3]))
    values, _ = enumerate_format(e, m, b)
    mids = (values[1:] + values[:-1]) / 2  # every tie of the format
    top = np.log2(values[-1]) + 1.5
    x = np.concatenate([log_uniform(rng, 3000, 2.0 - b - m - 2, top), mids, -mids, values, -values]).astype(np.float32)
    np.testing.assert_array_equal(fq(x, fmt=fmt), oracle(x, e, m, b, mx).astype(np.float32))


def test_matches_ml_dtypes_float8_e4m3fn():
    rng = np.random.default_rng(4)
    values, _ = enumerate_format(4, 3, 7)
    x = np.concatenate([log_uniform(rng, 20000, -12, 10), (values[1:] + values[:-1]) / 2]).astype(np.float32)
    expected = np.clip(x, -448, 448).astype(ml_dtypes.float8_e4m3fn).astype(np.float32)
    np.testing.assert_array_equal(fq(x), expected)


def test_matches_ml_dtypes_float8_e5m2():
    rng = np.random.default_rng(5)
    x = log_uniform(rng, 20000, -18, 17)
    expected = np.clip(x, -57344, 57344).astype(ml_dtypes.float8_e5m2).astype(np.float32)
    np.testing.assert_array_equal(fq(x, fmt=E5M2), expected)


# -- non-saturating -----------------------------------------------------------------------


def test_non_saturating_with_infinity():
    y = fq([470.0, -1e6, 460.0, np.inf, 1.0], saturation=0, has_infinity=1)
    assert y.tolist() == [np.inf, -np.inf, 448.0, np.inf, 1.0]


def test_has_inf_is_read_as_has_infinity():
    ctx = make_ctx(saturation=0, has_inf=1, has_nan=1)
    assert ctx.attrs["has_infinity"] == 1
    y = fq([470.0], saturation=0, has_inf=1)
    assert y.tolist() == [np.inf]


def test_non_saturating_with_nan():
    y = fq([470.0, -1e6, 460.0, np.inf, -2.0], saturation=0, has_nan=1)
    assert np.isnan(y[:2]).all() and np.isnan(y[3])
    assert y[2] == 448.0 and y[4] == -2.0


def test_non_saturating_without_special_values_is_refused():
    with pytest.raises(InvalidAttributeError, match=NODE):
        make_ctx(saturation=0)


# -- validation and datatypes ----------------------------------------------------------------


@pytest.mark.parametrize(
    "fmt", [(0, 3, 7, 448.0), (4.5, 3, 7, 448.0), (4, -1, 7, 448.0), (4, 3, 7.5, 448.0), (12, 3, 7, 448.0)]
)
def test_invalid_format_names_node(fmt):
    with pytest.raises(InvalidAttributeError, match=NODE):
        fq([1.0], fmt=fmt)


@pytest.mark.parametrize("attrs", [{"rounding_mode": "UP"}, {"rounding_mode": 0}, {"saturation": 2}, {"has_nan": "1"}])
def test_invalid_attributes_name_node(attrs):
    with pytest.raises(InvalidAttributeError, match=NODE):
        make_ctx(**attrs)


def test_zero_scale_names_node():
    with pytest.raises(InvalidAttributeError, match=NODE):
        fq([1.0], scale=0.0)


def _infos(scale, e=4, m=3, b=7, mx=448.0):
    x = TensorInfo(dtype=ir.DataType.FLOAT, shape=ir.Shape([3]))
    return [x] + [TensorInfo(value=None if v is None else np.asarray(v, np.float32)) for v in (scale, e, m, b, mx)]


def test_infer_datatypes():
    assert FloatQuant.infer_datatypes(make_ctx(), _infos(1.0)) == [DataType.minifloat(4, 3, 7)]
    assert FloatQuant.infer_datatypes(make_ctx(), _infos(1.0, 5, 2, 15, 57344.0)) == [DataType.parse("FLOAT<5,2,15>")]
    assert FloatQuant.infer_datatypes(make_ctx(), _infos(0.5)) == [None]
    assert FloatQuant.infer_datatypes(make_ctx(), _infos(None)) == [None]
    assert FloatQuant.infer_datatypes(make_ctx(), _infos(1.0, m=None)) == [None]
    assert FloatQuant.infer_datatypes(make_ctx(saturation=0, has_nan=1), _infos(1.0)) == [None]


def test_dtype_and_registration():
    assert fq([0.3]).dtype == np.float32
    y = FloatQuant.execute(make_ctx(), np.array([0.3], np.float64), *(np.float32(v) for v in (1, 4, 3, 7, 448)))
    assert y.dtype == np.float64 and y.tolist() == [0.3125]
    assert get_op("onnx.brevitas", "FloatQuant") is FloatQuant


def test_raise_rule_gives_floatquant_for_float8():
    from qonnx_tools.decline import Decline
    from qonnx_tools.lowering import QdqChain

    e4m3 = np.dtype(ml_dtypes.float8_e4m3fn)
    raised = FloatQuant.raise_qdq(QdqChain(e4m3, None, -np.inf, np.inf, 0, None, False))
    assert (raised.op, raised.op_type, raised.zeropt) == (FloatQuant, "FloatQuant", None)
    assert raised.attrs["saturation"] == 0 and raised.attrs["has_nan"] == 1
    assert [float(v) for v in raised.params.values()] == [4.0, 3.0, 7.0, 448.0]
    clipped = FloatQuant.raise_qdq(QdqChain(e4m3, None, -1.0, 1.0, 1, None, None))
    assert isinstance(clipped, Decline) and clipped.reason == "Clip on a float8/float4 container has no FloatQuant form"
    assert FloatQuant.raise_qdq(QdqChain(np.dtype(np.int8), (-128, 127), -np.inf, np.inf, 0, None, True)) is None


def test_check_params_max_val_positive():
    attrs = FloatQuant.resolve_attributes({}, "n")
    problems = FloatQuant.check_params(attrs, {"scale": np.float32(1), "max_val": np.float32(-1)}, None)
    assert [p.message for p in problems] == ["max_val must be > 0, got -1"]
