"""Quantizer -> thresholds and absorbing ops into thresholds: exact, ties included.

The oracle is always the executor running the original node(s); MultiThreshold must
reproduce it bit for bit on inputs placed exactly on rounding ties and on their
float32 neighbours.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qonnx_tools._ir import ir
from qonnx_tools.decline import Decline
from qonnx_tools.streamline.thresholds import (
    absorb,
    float_to_key,
    key_to_float,
    least_true,
    round_to_integer_input,
)

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")

MODES = ["ROUND", "FLOOR", "CEIL", "UP", "DOWN", "HALF_UP", "HALF_DOWN"]


def test_float_keys_roundtrip_and_order():
    rng = np.random.default_rng(0)
    bits = rng.integers(0, 2**32, size=20000, dtype=np.uint64).astype(np.uint32)
    x = bits.view(np.float32)
    x = x[np.isfinite(x)]
    x = np.concatenate([x, np.float32([0.0, -0.0, 1.0, -1.0, 3.4028235e38, -3.4028235e38, 1e-45, -1e-45])])
    back = key_to_float(float_to_key(x))
    assert np.array_equal(back, x)  # -0.0 == 0.0 compares equal
    order = np.argsort(x, kind="stable")
    keys = float_to_key(x)[order]
    assert np.all(np.diff(keys) >= 0)


def test_least_true_edges():
    got = least_true(lambda t: t >= np.float32([[3.5, -np.inf, np.inf]]), (1, 3))
    assert got[0, 0] == np.float32(3.5)
    assert got[0, 1] == -np.inf  # always true
    assert got[0, 2] == np.inf  # never true for a finite value


def test_guesses_change_the_number_of_probes_not_the_result():
    """A predicate with known answers: x >= t. Exact, wrong, NaN and infinite guesses all give
    the unguided result; an exact guess needs 4 + 11 probes instead of 2 + 32."""
    rng = np.random.default_rng(0)
    t = rng.normal(scale=10.0, size=(6, 15)).astype(np.float32)
    t[0, 0], t[1, 1] = -np.inf, np.inf
    probes = []

    def pred(x):
        probes.append(1)
        return x >= t

    unguided = least_true(pred, t.shape)
    unguided_probes = len(probes)
    assert np.array_equal(unguided, t)
    wrong = rng.normal(size=t.shape).astype(np.float32)
    for guesses in ([t], [wrong], [wrong, t], [np.full(t.shape, np.nan, np.float32)], [t * np.float32(np.inf)]):
        probes.clear()
        assert np.array_equal(least_true(pred, t.shape, guesses), unguided)
    probes.clear()
    least_true(pred, t.shape, [t])
    assert (unguided_probes, len(probes)) == (2 + 32, 4 + 11)


def _points(lo, hi, scale, kit):
    """Ties (m - 0.5) * s, levels m * s, their float32 neighbours, random values and extremes."""
    m = np.arange(lo - 1, hi + 2, dtype=np.float64)
    ties = np.concatenate([(m - 0.5) * scale, m * scale]).astype(np.float32)
    rng = np.random.default_rng(1)
    rand = rng.uniform((lo - 2) * scale, (hi + 2) * scale, size=200).astype(np.float32)
    extremes = np.float32([0.0, -0.0, 1e30, -1e30, 3.4e38, -3.4e38])
    return np.concatenate([kit.near(ties, ulps=3), rand, extremes])


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("signed", "narrow", "bits"), [(1, 0, 2), (1, 1, 2), (0, 0, 3), (1, 0, 4), (0, 1, 2)])
@pytest.mark.parametrize("scale", [1.0, 0.25, 0.1, 0.37])
def test_quant_thresholds_exact_on_ties(kit, mode, signed, narrow, bits, scale):
    from qonnx_tools.ops._rounding import int_bounds

    lo, hi = (float(v) for v in int_bounds(bool(signed), bool(narrow), bits))
    pts = _points(lo, hi, scale, kit)
    n = pts.size
    model = kit.model(
        [kit.quant("x", "s", "z", "b", "y", signed=signed, narrow=narrow, mode=mode)],
        [("x", [n, 1])], [("y", [n, 1])],
        [("s", np.float32(scale)), ("z", np.float32(0)), ("b", np.float32(bits))],
    )
    feeds = {"x": pts.reshape(n, 1)}
    p = kit.check(model, "quant-to-multithreshold", feeds)
    assert kit.ops(model)["MultiThreshold"] == 1 and kit.ops(model)["Quant"] == 0
    assert not kit.declined(p)


def test_round_half_even_thresholds_use_nextafter(kit):
    """ROUND: the tie at 0.5 rounds down to 0 (even) -> threshold just above; the tie at 1.5 rounds up."""
    model = kit.model(
        [kit.quant("x", "s", "z", "b", "y", signed=0, mode="ROUND")],
        [("x", [1, 4])], [("y", [1, 4])],
        [("s", np.float32(1)), ("z", np.float32(0)), ("b", np.float32(2))],
    )
    kit.apply(model, "quant-to-multithreshold")
    (t,) = [c[0] for c in kit.consts(model, "MultiThreshold")]
    np.testing.assert_array_equal(t, [[np.nextafter(np.float32(0.5), np.float32(1)), 1.5, np.nextafter(np.float32(2.5), np.float32(3))]])
    # HALF_UP: every tie reaches the level
    model = kit.model(
        [kit.quant("x", "s", "z", "b", "y", signed=0, mode="HALF_UP")],
        [("x", [1, 4])], [("y", [1, 4])],
        [("s", np.float32(1)), ("z", np.float32(0)), ("b", np.float32(2))],
    )
    kit.apply(model, "quant-to-multithreshold")
    (t,) = [c[0] for c in kit.consts(model, "MultiThreshold")]
    np.testing.assert_array_equal(t, [[0.5, 1.5, 2.5]])


@pytest.mark.parametrize("layout", ["NCHW", "NHWC", "NCW"])
def test_per_channel_quant_thresholds(kit, layout):
    rng = np.random.default_rng(2)
    c = 5
    shape = {"NCHW": [2, c, 3, 3], "NHWC": [2, 3, 3, c], "NCW": [3, c, 4]}[layout]
    s_shape = {"NCHW": (1, c, 1, 1), "NHWC": (1, 1, 1, c), "NCW": (1, c, 1)}[layout]
    scale = rng.uniform(0.05, 0.5, size=s_shape).astype(np.float32)
    model = kit.model(
        [kit.quant("x", "s", "z", "b", "y", signed=1, mode="ROUND")],
        [("x", shape)], [("y", shape)],
        [("s", scale), ("z", np.float32(0)), ("b", np.float32(4))],
    )
    x = (rng.integers(-10, 10, size=shape) * 0.5 * np.broadcast_to(scale, shape)).astype(np.float32)
    kit.check(model, "quant-to-multithreshold", {"x": x})
    (mt,) = [n for n in model.graph if n.op_type == "MultiThreshold"]
    assert mt.attributes["data_layout"].value == layout
    assert kit.consts(model, "MultiThreshold")[0][0].shape == (c, 15)


def test_bipolar_quant_to_threshold(kit):
    model = kit.model(
        [kit.node("BipolarQuant", ["x", "s"], ["y"], domain=kit.QONNX)],
        [("x", [3, 4])], [("y", [3, 4])], [("s", np.float32(0.75))],
    )
    x = np.float32([[-1, -0.0, 0.0, 1e-45], [-1e-45, 2, -3, 0.5], [7, -7, 0, 1]])
    kit.check(model, "quant-to-multithreshold", {"x": x})
    assert kit.ops(model) == {"MultiThreshold": 1, "Mul": 1}


# -- absorbing ops into thresholds -----------------------------------------------------------------


def _mt_graph(kit, op, c, thresholds, shape, layout="NC", out_scale=1.0, out_bias=0.0, const_left=False):
    inputs = ["c", "x"] if const_left else ["x", "c"]
    nodes = [
        kit.node(op, inputs, ["m"]),
        kit.node("MultiThreshold", ["m", "t"], ["y"], domain=kit.QONNX, data_layout=layout,
                 out_scale=out_scale, out_bias=out_bias),
    ]
    return kit.model(nodes, [("x", shape)], [("y", shape)], [("c", c), ("t", thresholds)])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    op=st.sampled_from(["Mul", "Add", "Div", "Sub"]),
    sign=st.sampled_from(["pos", "neg", "zero", "tiny", "perchan_pos", "perchan_neg", "perchan_pruned"]),
    seed=st.integers(0, 2**31 - 1),
)
def test_absorb_is_exact(kit, op, sign, seed):
    rng = np.random.default_rng(seed)
    ch, nt = 4, 3
    t = np.sort(rng.normal(size=(ch, nt)).astype(np.float32) * 3, axis=1)
    if sign.startswith("perchan"):
        c = rng.uniform(0.1, 3, size=(ch,)).astype(np.float32)
        if sign == "perchan_neg":
            c = -c
        if sign == "perchan_pruned":
            c[1] = 0.0
            c[2] = 1e-10
    else:
        c = np.float32({"pos": 0.37, "neg": -1.7, "zero": 0.0, "tiny": 1e-10}[sign] * rng.uniform(0.5, 2))
    if op == "Div" and np.any(c == 0):
        c = np.where(c == 0, np.float32(0.5), c).astype(np.float32)
    model = _mt_graph(kit, op, np.asarray(c), t, ["N", ch], out_scale=2.0, out_bias=-3.0)
    original = ir.from_proto(ir.to_proto(model))
    kit.apply(model, "absorb-into-multithreshold")
    assert kit.ops(model) == {"MultiThreshold": 1}
    new_t = kit.consts(model, "MultiThreshold")[0][0]
    # inputs on the old and new thresholds and their float32 neighbours, plus random values
    pts = np.concatenate([t.ravel(), new_t[np.isfinite(new_t)].ravel(), rng.normal(size=40).astype(np.float32) * 5])
    x = np.repeat(kit.near(pts, ulps=2)[:, None], ch, axis=1).astype(np.float32)
    np.testing.assert_array_equal(kit.run(model, {"x": x})["y"], kit.run(original, {"x": x})["y"])
    assert np.all(np.diff(np.where(np.isfinite(new_t), new_t, np.sign(new_t) * 3e38), axis=1) >= 0)  # sorted rows


def test_absorb_pruned_and_negative_channels_exactly(kit):
    """Per-channel factor with a zero, a tiny and negative... values mixed only in magnitude sign-consistently."""
    t = np.float32([[0.5, 1.5], [0.5, 1.5], [-0.5, 0.5], [0.25, 3.0]])
    c = np.float32([0.0, 1e-10, 2.0, 1e-30])
    model = _mt_graph(kit, "Mul", c, t, [5, 4])
    x = np.float32([[0, 1, 2, 3], [-1e30, 1e30, 0.25, 5e9], [1e38, -1e38, -0.25, 2.5e29], [0.5, -0.5, 0.75, 3e30], [7, 8, 9, 1e31]])
    kit.check(model, "absorb-into-multithreshold", {"x": x})
    new_t = kit.consts(model, "MultiThreshold")[0][0]
    assert np.isinf(new_t[0]).all()  # c == 0: 0 >= 0.5 never -> +inf
    assert np.isinf(new_t).any()


def test_negative_scalar_flips_comparison(kit):
    t = np.float32([[-1.0, 0.0, 1.0]])
    model = _mt_graph(kit, "Mul", np.float32(-0.5), t, [1, 7], out_scale=1.0, out_bias=-1.0)
    x = np.float32([[-4, -2, -1e-7, 0, 1e-7, 2, 4]])
    kit.check(model, "absorb-into-multithreshold", {"x": x})
    (mt,) = [n for n in model.graph if n.op_type == "MultiThreshold"]
    assert mt.attributes["out_scale"].value == -1.0
    assert mt.attributes["out_bias"].value == 2.0


def test_mixed_sign_factor_is_declined_not_absorbed(kit):
    t = np.float32([[0.5], [0.5]])
    model = _mt_graph(kit, "Mul", np.float32([1.0, -1.0]), t, [1, 2])
    p = kit.check(model, "absorb-into-multithreshold", {"x": np.float32([[1, -1]])})
    assert kit.ops(model) == {"Mul": 1, "MultiThreshold": 1}
    assert any("mixed-sign" in line for line in kit.declined(p))


def test_constant_left_operand_absorbed(kit):
    t = np.float32([[0.5, 1.5]])
    model = _mt_graph(kit, "Mul", np.float32(3.0), t, [1, 4], const_left=True)
    kit.check(model, "absorb-into-multithreshold", {"x": np.float32([[0.1, 0.2, 0.5, 1 / 6]])})
    assert kit.ops(model) == {"MultiThreshold": 1}


def test_round_to_integer_input():
    t = np.float32([[-np.inf, -3.5, 0.2, 2.0, 9.0, np.inf]])
    got = round_to_integer_input(t, -2, 3)
    np.testing.assert_array_equal(got, [[-2, -2, 1, 2, 4, 4]])


def test_absorb_function_reasons():
    assert isinstance(absorb(np.zeros((2, 1), np.float32), "Mul", np.float32([1, -1])), Decline)
    assert isinstance(absorb(np.zeros((1, 1), np.float32), "Div", np.float32([0])), Decline)


@pytest.mark.parametrize(
    ("pass_name", "absorbs", "keeps"),
    [
        ("absorb-add-into-multithreshold", "Add", "Relu"),
        ("absorb-mul-into-multithreshold", "Mul", "Relu"),
        ("absorb-relu-into-multithreshold", "Relu", "Add"),
    ],
)
def test_single_kind_absorb_passes(kit, pass_name, absorbs, keeps):
    """Each single-kind pass takes its own op (next to the MultiThreshold) and stops at any other."""
    t = np.float32([[-0.5, 0.25, 1.0]])
    first = {"Add": kit.node("Relu", ["x"], ["r"]), "Mul": kit.node("Relu", ["x"], ["r"]), "Relu": kit.node("Add", ["x", "c"], ["r"])}[absorbs]
    second = {"Add": kit.node("Add", ["r", "c"], ["m"]), "Mul": kit.node("Mul", ["r", "c"], ["m"]), "Relu": kit.node("Relu", ["r"], ["m"])}[absorbs]
    nodes = [first, second, kit.node("MultiThreshold", ["m", "t"], ["y"], domain=kit.QONNX, data_layout="NC")]
    model = kit.model(nodes, [("x", [1, 6])], [("y", [1, 6])], [("c", np.float32(0.75)), ("t", t)])
    kit.check(model, pass_name, {"x": np.float32([[-1, -0.2, 0, 0.3, 0.8, 2]])})
    assert kit.ops(model) == {keeps: 1, "MultiThreshold": 1}
