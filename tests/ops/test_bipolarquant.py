"""BipolarQuant: signs times scale, zero maps to +scale."""

from __future__ import annotations

import numpy as np
import pytest

from qonnx_tools._ir import ir
from qonnx_tools.datatypes import BIPOLAR, DataType
from qonnx_tools.errors import InvalidAttributeError
from qonnx_tools.node_context import NodeContext
from qonnx_tools.ops import get_op
from qonnx_tools.ops.base import TensorInfo
from qonnx_tools.ops.bipolarquant import BipolarQuant

NODE = "bin_node_3"


def make_ctx(**attrs) -> NodeContext:
    where = f"node {NODE!r} (BipolarQuant)"
    return NodeContext(NODE, "BipolarQuant", "qonnx.custom_op.general", 1, BipolarQuant.resolve_attributes(attrs, where))


def test_signs():
    x = np.array([-2.0, -1e-30, -0.0, 0.0, 1e-30, 3.5], dtype=np.float32)
    y = BipolarQuant.execute(make_ctx(), x, np.float32(1.0))
    assert y.dtype == np.float32
    assert y.tolist() == [-1.0, -1.0, 1.0, 1.0, 1.0, 1.0]


def test_zero_maps_to_plus_scale():
    y = BipolarQuant.execute(make_ctx(), np.zeros(3, np.float32), np.float32(0.25))
    assert y.tolist() == [0.25, 0.25, 0.25]


def test_scale_and_per_channel_scale():
    x = np.array([[1.0, -1.0], [-3.0, 0.0]], dtype=np.float32)
    assert BipolarQuant.execute(make_ctx(), x, np.array([0.1], np.float32)).tolist() == [
        [np.float32(0.1), -np.float32(0.1)],
        [-np.float32(0.1), np.float32(0.1)],
    ]
    y = BipolarQuant.execute(make_ctx(), x, np.array([[2.0], [0.5]], np.float32))
    assert y.tolist() == [[2.0, -2.0], [-0.5, 0.5]]


@pytest.mark.parametrize("dtype", [np.float16, np.float64])
def test_dtype_preserved(dtype):
    y = BipolarQuant.execute(make_ctx(), np.array([1, -1], dtype=dtype), np.float32(3))
    assert y.dtype == dtype and y.tolist() == [3.0, -3.0]


def test_bad_scale_names_node():
    with pytest.raises(InvalidAttributeError, match=NODE):
        BipolarQuant.execute(make_ctx(), np.zeros((2, 2), np.float32), np.ones(3, np.float32))
    with pytest.raises(InvalidAttributeError, match=NODE):
        BipolarQuant.execute(make_ctx(), np.zeros(2, np.float32), np.float32(np.nan))


@pytest.mark.parametrize(
    ("scale", "expected"),
    [(1.0, BIPOLAR), ([1.0, 1.0], BIPOLAR), (0.5, DataType.scaled_int(1)), (None, DataType.scaled_int(1))],
)
def test_infer_datatypes(scale, expected):
    x = TensorInfo(dtype=ir.DataType.FLOAT, shape=ir.Shape([4]))
    s = TensorInfo(value=None if scale is None else np.asarray(scale, np.float32))
    assert BipolarQuant.infer_datatypes(make_ctx(), [x, s]) == [expected]


def test_registered():
    assert get_op("finn.custom_op.general", "BipolarQuant") is BipolarQuant
