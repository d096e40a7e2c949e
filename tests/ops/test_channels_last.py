"""Channels-last Conv / MaxPool / BatchNormalization against direct NHWC loop oracles."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from qonnx_tools._ir import ir
from qonnx_tools.domains import CHANNELS_LAST
from qonnx_tools.errors import InvalidAttributeError
from qonnx_tools.node_context import NodeContext
from qonnx_tools.ops import get_op
from qonnx_tools.ops.base import TensorInfo
from qonnx_tools.ops.channels_last import BatchNormalization, Conv, MaxPool


NODE = "cl_node_1"


def make_ctx(op, **attrs) -> NodeContext:
    where = f"node {NODE!r} ({op.name})"
    return NodeContext(NODE, op.name, CHANNELS_LAST, 1, op.resolve_attributes(attrs, where))


def conv_oracle(x, w, b, stride, pads, dilation, group):
    """Direct 2-D convolution on NHWC data with (M, kh, kw, C/group) weights (qonnx's channels-last layout)."""
    n, h, wd, c = x.shape
    m, kh, kw, cg = w.shape
    xp = np.zeros((n, h + pads[0] + pads[2], wd + pads[1] + pads[3], c))
    xp[:, pads[0] : pads[0] + h, pads[1] : pads[1] + wd, :] = x
    oh = (xp.shape[1] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    ow = (xp.shape[2] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    y = np.zeros((n, oh, ow, m))
    per_group = m // group
    for bi, i, j, oc in itertools.product(range(n), range(oh), range(ow), range(m)):
        g = oc // per_group
        acc = 0.0 if b is None else float(b[oc])
        for ic, ki, kj in itertools.product(range(cg), range(kh), range(kw)):
            acc += xp[bi, i * stride[0] + ki * dilation[0], j * stride[1] + kj * dilation[1], g * cg + ic] * w[oc, ki, kj, ic]
        y[bi, i, j, oc] = acc
    return y


def maxpool_oracle(x, k, stride, pads):
    n, h, wd, c = x.shape
    xp = np.full((n, h + pads[0] + pads[2], wd + pads[1] + pads[3], c), -np.inf)
    xp[:, pads[0] : pads[0] + h, pads[1] : pads[1] + wd, :] = x
    oh = (xp.shape[1] - k[0]) // stride[0] + 1
    ow = (xp.shape[2] - k[1]) // stride[1] + 1
    y = np.zeros((n, oh, ow, c))
    for i, j in itertools.product(range(oh), range(ow)):
        window = xp[:, i * stride[0] : i * stride[0] + k[0], j * stride[1] : j * stride[1] + k[1], :]
        y[:, i, j, :] = window.max(axis=(1, 2))
    return y


@pytest.mark.parametrize(
    ("stride", "pads", "dilation", "group", "bias"),
    [
        ((1, 1), (0, 0, 0, 0), (1, 1), 1, False),
        ((1, 1), (1, 1, 1, 1), (1, 1), 1, True),
        ((2, 1), (1, 0, 0, 2), (1, 1), 1, True),
        ((1, 1), (2, 2, 2, 2), (2, 2), 1, False),
        ((1, 1), (1, 1, 1, 1), (1, 1), 2, True),  # grouped
        ((1, 1), (1, 1, 1, 1), (1, 1), 4, True),  # depthwise
    ],
)
def test_conv(stride, pads, dilation, group, bias):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 6, 5, 4)).astype(np.float32)
    w = rng.normal(size=(4, 3, 3, 4 // group)).astype(np.float32)
    b = rng.normal(size=(4,)).astype(np.float32) if bias else None
    ctx = make_ctx(Conv, kernel_shape=(3, 3), strides=stride, pads=pads, dilations=dilation, group=group)
    args = (x, w) if b is None else (x, w, b)
    y = Conv.execute(ctx, *args)
    expected = conv_oracle(x, w, b, stride, pads, dilation, group)
    assert y.dtype == np.float32 and y.shape == expected.shape
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)
    (info,) = Conv.infer_types(ctx, [TensorInfo(ir.DataType.FLOAT, ir.Shape(x.shape)), TensorInfo(shape=ir.Shape(w.shape))])
    assert tuple(info.shape) == y.shape and info.dtype == ir.DataType.FLOAT


def test_conv_1d():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(1, 7, 3)).astype(np.float32)  # (N, W, C)
    w = rng.normal(size=(2, 3, 3)).astype(np.float32)  # (M, kw, C)
    y = Conv.execute(make_ctx(Conv, kernel_shape=(3,), pads=(1, 1)), x, w)
    expected = conv_oracle(x[:, None], w[:, None], None, (1, 1), (0, 1, 0, 1), (1, 1), 1)[:, 0]
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("k", "stride", "pads"), [((2, 2), (2, 2), (0, 0, 0, 0)), ((3, 3), (1, 1), (1, 1, 1, 1)), ((3, 2), (2, 1), (0, 1, 1, 0))]
)
def test_maxpool(k, stride, pads):
    rng = np.random.default_rng(2)
    x = rng.normal(size=(2, 6, 5, 3)).astype(np.float32)
    ctx = make_ctx(MaxPool, kernel_shape=k, strides=stride, pads=pads)
    y = MaxPool.execute(ctx, x)
    expected = maxpool_oracle(x, k, stride, pads)
    assert y.shape == expected.shape
    np.testing.assert_array_equal(y, expected.astype(np.float32))
    (info,) = MaxPool.infer_types(ctx, [TensorInfo(ir.DataType.FLOAT, ir.Shape(x.shape))])
    assert tuple(info.shape) == y.shape


@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (3, 5), (2, 7, 5)])
def test_batchnorm(shape):
    rng = np.random.default_rng(3)
    x = rng.normal(size=shape).astype(np.float32)
    c = shape[-1]
    scale, bias, mean = (rng.normal(size=c).astype(np.float32) for _ in range(3))
    var = rng.uniform(0.5, 2.0, size=c).astype(np.float32)
    ctx = make_ctx(BatchNormalization, epsilon=1e-3)
    y = BatchNormalization.execute(ctx, x, scale, bias, mean, var)
    expected = (x - mean) / np.sqrt(var.astype(np.float64) + 1e-3) * scale + bias  # channels on the last axis
    assert y.shape == x.shape
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)
    (info,) = BatchNormalization.infer_types(ctx, [TensorInfo(ir.DataType.FLOAT, ir.Shape(shape))])
    assert tuple(info.shape) == shape


def test_infer_types_symbolic_and_auto_pad():
    x = TensorInfo(ir.DataType.FLOAT, ir.Shape(["N", 9, 8, 3]))
    w = TensorInfo(shape=ir.Shape([16, 3, 3, 3]))
    (same,) = Conv.infer_types(make_ctx(Conv, auto_pad="SAME_UPPER", strides=(2, 2)), [x, w])
    assert [d if isinstance(d, int) else None for d in same.shape] == [None, 5, 4, 16]
    (valid,) = Conv.infer_types(make_ctx(Conv, auto_pad="VALID"), [x, w])
    assert [d if isinstance(d, int) else None for d in valid.shape] == [None, 7, 6, 16]
    (pool,) = MaxPool.infer_types(make_ctx(MaxPool, kernel_shape=(2, 2), strides=(2, 2), ceil_mode=1), [x])
    assert [d if isinstance(d, int) else None for d in pool.shape] == [None, 5, 4, 3]


def test_registered_in_channels_last_domain():
    assert get_op("qonnx.custom_op.channels_last", "Conv") is Conv
    assert get_op("finn.custom_op.channels_last", "MaxPool") is MaxPool
    assert get_op(CHANNELS_LAST, "BatchNormalization") is BatchNormalization
    assert get_op("qonnx.custom_op.general", "Conv") is None


def test_rank_and_outputs_checked():
    with pytest.raises(InvalidAttributeError, match=NODE):
        MaxPool.execute(make_ctx(MaxPool, kernel_shape=(2,)), np.zeros((4, 3), np.float32))
    ctx = NodeContext(NODE, "MaxPool", CHANNELS_LAST, 1, {"kernel_shape": (2, 2)}, n_outputs=2)
    with pytest.raises(InvalidAttributeError, match=NODE):
        MaxPool.execute(ctx, np.zeros((1, 4, 4, 2), np.float32))


def test_contract_defaults_no_parameter_rules_no_qcdq_form():
    from qonnx_tools.decline import Decline

    assert Conv.parameter_inputs() == () and Conv.check_params({}, {}, None) == []
    declined = MaxPool.lower_qcdq(None, None)
    assert isinstance(declined, Decline) and declined.reason == "no standard-ONNX lowering for MaxPool"
    assert BatchNormalization.raise_qdq(None) is None
