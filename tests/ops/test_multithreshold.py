"""MultiThreshold: compared with a direct broadcast-compare-and-count oracle."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from qonnx_tools._ir import ir
from qonnx_tools.datatypes import BIPOLAR, DataType
from qonnx_tools.errors import InvalidAttributeError
from qonnx_tools.node_context import NodeContext
from qonnx_tools.ops import get_op
from qonnx_tools.ops.base import TensorInfo
from qonnx_tools.ops.multithreshold import MultiThreshold

NODE = "mt_node_5"


def make_ctx(**attrs) -> NodeContext:
    where = f"node {NODE!r} (MultiThreshold)"
    return NodeContext(NODE, "MultiThreshold", "qonnx.custom_op.general", 1, MultiThreshold.resolve_attributes(attrs, where))


def run(x, t, **attrs):
    return MultiThreshold.execute(make_ctx(**attrs), np.asarray(x), np.asarray(t))


def oracle(x: np.ndarray, t: np.ndarray, axis: int | None, out_scale=1.0, out_bias=0.0) -> np.ndarray:
    """Count x >= t over the thresholds of x's channel by direct comparison (small tensors only)."""
    x = np.asarray(x, dtype=np.float64)
    t = np.asarray(t, dtype=np.float64)
    if axis is None:
        tb = t[0]  # (T,)
    else:
        shape = [1] * x.ndim + [t.shape[1]]
        shape[axis] = t.shape[0]
        tb = t.reshape(shape)
    counts = (x[..., None] >= tb).sum(-1)
    return (counts * out_scale + out_bias).astype(np.float32)


def rand_thresholds(rng, channels, n, sort=True):
    t = rng.normal(size=(channels, n)).astype(np.float32)
    return np.sort(t, axis=1) if sort else t


@pytest.mark.parametrize("n_thresh", [1, 3, 8, 9, 15, 40])
@pytest.mark.parametrize(
    ("layout", "shape", "axis"),
    [
        ("NCHW", (2, 5, 3, 4), 1),
        ("NHWC", (2, 3, 4, 5), 3),
        ("NC", (6, 5), 1),
        ("NCHW", (6, 5), 1),  # 2-D input: channels on axis 1 whatever the layout says
        ("NHWC", (6, 5), 1),
        ("NCW", (2, 5, 7), 1),
        ("NWC", (2, 7, 5), 2),
    ],
)
def test_per_channel_layouts(layout, shape, axis, n_thresh):
    rng = np.random.default_rng(n_thresh)
    x = rng.normal(size=shape).astype(np.float32)
    t = rand_thresholds(rng, 5, n_thresh)
    x.flat[::7] = t.flat[0]  # exact hits: x == t counts
    y = run(x, t, data_layout=layout)
    assert y.dtype == np.float32 and y.shape == x.shape
    np.testing.assert_array_equal(y, oracle(x, t, axis))


@pytest.mark.parametrize("n_thresh", [2, 30])
def test_shared_thresholds(n_thresh):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 4, 3, 3)).astype(np.float32)
    t = rand_thresholds(rng, 1, n_thresh)
    np.testing.assert_array_equal(run(x, t), oracle(x, t, None))
    np.testing.assert_array_equal(run(x, t[0]), oracle(x, t, None))  # 1-D thresholds


@pytest.mark.parametrize("n_thresh", [4, 20])
def test_unsorted_thresholds(n_thresh):
    rng = np.random.default_rng(2)
    x = rng.normal(size=(3, 4, 2, 2)).astype(np.float32)
    t = rand_thresholds(rng, 4, n_thresh, sort=False)
    np.testing.assert_array_equal(run(x, t), oracle(x, t, 1))
    x_last = np.ascontiguousarray(np.moveaxis(x, 1, -1))
    np.testing.assert_array_equal(run(x_last, t, data_layout="NHWC"), oracle(x_last, t, 3))


@pytest.mark.parametrize("n_thresh", [3, 12])
def test_infinite_thresholds_and_values(n_thresh):
    rng = np.random.default_rng(3)
    t = rand_thresholds(rng, 2, n_thresh)
    t[0, 0] = -np.inf
    t[1, -1] = np.inf
    t[1, 0] = -np.inf
    x = np.array([[-np.inf, np.inf], [0.0, -np.inf], [np.inf, 0.5]], dtype=np.float32)
    y = run(x, t, data_layout="NC")
    np.testing.assert_array_equal(y, oracle(x, t, 1))
    assert y[0, 0] == 1  # -inf reaches only the -inf threshold
    assert y[0, 1] == n_thresh  # +inf reaches every threshold, +inf included


@pytest.mark.parametrize("n_thresh", [3, 12])
def test_nan_values_reach_nothing(n_thresh):
    t = np.linspace(-1, 1, n_thresh, dtype=np.float32).reshape(1, -1)
    x = np.array([[np.nan, 0.0]], dtype=np.float32)
    np.testing.assert_array_equal(run(x, t), oracle(x, t, None))
    assert run(x, t)[0, 0] == 0


@pytest.mark.parametrize("n_thresh", [3, 12])
def test_scale_and_bias(n_thresh):
    rng = np.random.default_rng(4)
    x = rng.normal(size=(4, 3)).astype(np.float32)
    t = rand_thresholds(rng, 3, n_thresh)
    y = run(x, t, out_scale=0.5, out_bias=-2.0, data_layout="NC")
    np.testing.assert_array_equal(y, oracle(x, t, 1, 0.5, -2.0))
    # FINN's bipolar pattern: one threshold at 0, scale 2, bias -1
    y = run(np.array([[-0.5, 0.0, 2.0]], np.float32), np.zeros((1, 1), np.float32), out_scale=2.0, out_bias=-1.0)
    assert y.tolist() == [[-1.0, 1.0, 1.0]]


def test_integer_inputs():
    x = np.array([[0, 3, 7, 15]], dtype=np.int32)
    t = np.array([[0.5, 3.0, 10.0]], dtype=np.float32)
    assert run(x, t).tolist() == [[0.0, 2.0, 2.0, 3.0]]


def test_no_thresholds():
    assert run(np.ones((2, 3), np.float32), np.zeros((3, 0), np.float32), out_bias=-1.0).tolist() == [[-1.0] * 3] * 2


def test_memory_lean_on_large_tensor():
    # 2**20 elements and 255 thresholds: a (elements x thresholds) boolean array would be 267 MB
    rng = np.random.default_rng(5)
    x = rng.normal(size=(1, 16, 256, 256)).astype(np.float32)
    t = np.sort(rng.normal(size=(16, 255)).astype(np.float32), axis=1)
    tracemalloc.start()
    y = run(x, t)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 40 * 2**20, f"peak {peak / 2**20:.0f} MiB"
    sample = (slice(None), slice(None), slice(0, 4), slice(0, 4))
    np.testing.assert_array_equal(y[sample], oracle(x[sample], t, 1))


# -- validation -------------------------------------------------------------------


def test_channel_mismatch_names_node():
    with pytest.raises(InvalidAttributeError, match=NODE):
        run(np.zeros((1, 4, 2, 2), np.float32), np.zeros((3, 2), np.float32))
    with pytest.raises(InvalidAttributeError, match=NODE):  # channels are last in NHWC
        run(np.zeros((1, 4, 2, 3), np.float32), np.zeros((4, 2), np.float32), data_layout="NHWC")


def test_bad_thresholds_name_node():
    with pytest.raises(InvalidAttributeError, match=NODE):
        run(np.zeros((1, 4), np.float32), np.zeros((4, 2, 1), np.float32))


@pytest.mark.parametrize(
    "attrs",
    [
        {"data_layout": "NHW"},
        {"data_layout": "NCHC"},
        {"data_layout": 3},
        {"out_dtype": "INT99x"},
        {"out_scale": "2"},
        {"out_bias": "x"},
    ],
)
def test_invalid_attributes_name_node(attrs):
    with pytest.raises(InvalidAttributeError, match=NODE):
        make_ctx(**attrs)


def test_attribute_defaults_and_normalisation():
    attrs = make_ctx(data_layout="nhwc", out_scale=2).attrs
    assert attrs["data_layout"] == "NHWC" and attrs["out_scale"] == 2.0
    assert attrs["out_dtype"] == "" and attrs["out_bias"] == 0.0


# -- types and datatypes ------------------------------------------------------------------


def _infos(thresholds_shape, value=None):
    x = TensorInfo(dtype=ir.DataType.FLOAT, shape=ir.Shape([1, 4, 2, 2]))
    t = TensorInfo(dtype=ir.DataType.FLOAT, shape=None if thresholds_shape is None else ir.Shape(thresholds_shape), value=value)
    return [x, t]


def test_infer_types():
    (out,) = MultiThreshold.infer_types(make_ctx(), _infos([4, 15]))
    assert out.dtype == ir.DataType.FLOAT and list(out.shape) == [1, 4, 2, 2]


@pytest.mark.parametrize(
    ("attrs", "shape", "expected"),
    [
        ({"out_dtype": "UINT4"}, [4, 15], DataType.parse("UINT4")),
        ({"out_dtype": "INT4", "out_bias": -8.0}, [4, 15], DataType.parse("INT4")),
        ({"out_dtype": "BIPOLAR", "out_scale": 2.0, "out_bias": -1.0}, [4, 1], BIPOLAR),
        ({"out_dtype": "INT4"}, [4, 15], DataType.parse("UINT4")),  # declared type cannot hold 8..15
        ({"out_dtype": "UINT8"}, None, DataType.parse("UINT8")),  # threshold count unknown: trust it
        ({}, [4, 15], DataType.parse("UINT4")),
        ({}, [4, 7], DataType.parse("UINT3")),
        ({"out_bias": -4.0}, [4, 7], DataType.parse("INT3")),
        ({"out_scale": 2.0, "out_bias": -1.0}, [4, 1], BIPOLAR),
        ({"out_scale": 0.5}, [4, 3], None),
        ({}, None, None),
    ],
)
def test_infer_datatypes(attrs, shape, expected):
    assert MultiThreshold.infer_datatypes(make_ctx(**attrs), _infos(shape)) == [expected]


def test_infer_datatypes_from_constant_thresholds():
    value = np.zeros((4, 3), np.float32)
    assert MultiThreshold.infer_datatypes(make_ctx(), _infos(None, value)) == [DataType.parse("UINT2")]


def test_registered_in_finn_domain():
    assert get_op("finn.custom_op.general", "MultiThreshold") is MultiThreshold
    assert get_op("qonnx.custom_op.general", "MultiThreshold") is MultiThreshold
