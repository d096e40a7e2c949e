"""``streamline`` end to end on handmade QONNX networks: integer-only form, outputs preserved.

Covers all-bipolar MLPs, negative and pruned (0 / 1e-10) BatchNorm scales, residual
joins with a shared quantizer (fan-out), depthwise / grouped / 1-D convolutions,
MaxPool, 3-D MatMul inputs and batch > 1.
"""

from __future__ import annotations

import numpy as np
import pytest

from qonnx_tools.streamline import Streamline, streamline_report

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")

ALLOWED = {"MultiThreshold", "MatMul", "Conv", "MaxPool", "Reshape", "Flatten", "Transpose", "Add", "Mul"}


class Net:
    """Collects nodes/initializers of a QONNX graph (Brevitas-like)."""

    def __init__(self, kit, seed=0):
        self.kit, self.nodes, self.inits, self.k = kit, [], [], 0
        self.rng = np.random.default_rng(seed)

    def name(self, base):
        self.k += 1
        return f"{base}{self.k}"

    def init(self, base, array):
        n = self.name(base)
        self.inits.append((n, np.asarray(array)))
        return n

    def quant(self, x, scale, bits, signed=1, narrow=0, mode="ROUND"):
        y = self.name("q")
        self.nodes.append(self.kit.quant(x, self.init("s", np.asarray(scale, np.float32)), self.init("z", np.float32(0)),
                                         self.init("b", np.float32(bits)), y, signed=signed, narrow=narrow, mode=mode,
                                         name=self.name("Quant")))
        return y

    def bipolar(self, x, scale=1.0):
        y = self.name("bq")
        self.nodes.append(self.kit.node("BipolarQuant", [x, self.init("s", np.float32(scale))], [y], domain=self.kit.QONNX))
        return y

    def op(self, op, inputs, **attrs):
        y = self.name(op.lower())
        self.nodes.append(self.kit.node(op, inputs, [y], name=self.name(op), **attrs))
        return y

    def bn(self, x, c, gamma=None):
        gamma = self.rng.uniform(0.5, 2, c).astype(np.float32) if gamma is None else np.asarray(gamma, np.float32)
        params = [gamma, self.rng.normal(size=c), self.rng.normal(size=c), self.rng.uniform(0.5, 2, c)]
        names = [self.init("bn", np.asarray(p, np.float32)) for p in params]
        return self.op("BatchNormalization", [x] + names)

    def linear(self, x, k, n, bits=2, bipolar=False, per_channel=True):
        w = self.rng.normal(size=(n, k)).astype(np.float32)
        if bipolar:
            wq = self.bipolar(self.init("w", w))
        else:
            s = self.rng.uniform(0.2, 0.6, (n, 1)) if per_channel else 0.4
            wq = self.quant(self.init("w", w), s, bits, narrow=1)
        return self.op("MatMul", [x, self.op("Transpose", [wq], perm=[1, 0])])

    def conv(self, x, cin, cout, k=3, group=1, rank=4, bits=4, pads=1, per_channel=True):
        w = self.rng.normal(size=[cout, cin // group] + [k] * (rank - 2)).astype(np.float32)
        s = self.rng.uniform(0.05, 0.3, [cout] + [1] * (rank - 1)).astype(np.float32) if per_channel else 0.1
        wq = self.quant(self.init("w", w), s, bits, narrow=1)
        return self.op("Conv", [x, wq], group=group, pads=[pads] * (2 * (rank - 2)), kernel_shape=[k] * (rank - 2))

    def model(self, inputs, outputs):
        return self.kit.model(self.nodes, inputs, outputs, self.inits)


def _check(kit, model, feeds, *, exact=False, allowed=ALLOWED, expect_report=0):
    before = kit.run(model, feeds)
    p = Streamline()
    p(model)
    after = kit.run(model, feeds)
    for name, ref in before.items():
        scale = max(float(np.abs(ref).max()), 1e-12)
        diff = float(np.abs(after[name].astype(np.float64) - ref).max())
        if exact:
            assert diff == 0, (name, diff)
        assert diff <= 1e-5 * scale, (name, diff, scale)
        if ref.ndim == 2:
            assert np.array_equal(ref.argmax(1), after[name].argmax(1))
    ops = kit.ops(model)
    assert set(ops) <= allowed, ops
    rows = streamline_report(model)
    assert len(rows) == expect_report, rows
    return p, ops


def test_all_bipolar_mlp_with_negative_and_pruned_bn(kit):
    net = Net(kit, seed=1)
    h = net.bipolar("x")
    h = net.linear(h, 16, 12, bipolar=True)
    gamma = np.float32([1, -1, 0.5, -2, 0.0, 1e-10, -1e-10, 3, -0.7, 1, 1, -1])
    h = net.bipolar(net.bn(h, 12, gamma))
    h = net.linear(h, 12, 10, bipolar=True)
    h = net.bipolar(net.bn(h, 10))
    y = net.linear(h, 10, 4, bipolar=True)
    model = net.model([("x", [5, 16])], [(y, [5, 4])])
    x = np.random.default_rng(0).normal(size=(5, 16)).astype(np.float32)
    _, ops = _check(kit, model, {"x": x}, exact=True)
    assert ops == {"MultiThreshold": 3, "MatMul": 3}
    for arrays in kit.consts(model, "MatMul"):
        assert set(np.unique(arrays[0])) <= {-1.0, 1.0}  # signs went into the bipolar weights


def test_tfc_like_2bit_mlp_with_input_preprocessing(kit):
    net = Net(kit, seed=2)
    h = net.op("Reshape", ["x", net.init("shape", np.int64([3, -1]))])
    h = net.op("Sub", [net.op("Mul", [h, net.init("two", np.float32(2))]), net.init("one", np.float32(1))])
    h = net.quant(h, 1.0, 2, narrow=1)
    for k, n in ((16, 12), (12, 12)):
        h = net.quant(net.bn(net.linear(h, k, n, per_channel=False), n, gamma=np.where(np.arange(n) % 3 == 0, -1, 1) * 0.8), 1.0, 2, narrow=1)
    h = net.linear(h, 12, 5, per_channel=False)
    y = net.op("Add", [net.op("Div", [net.op("Sub", [h, net.init("m", np.float32(0.3))]), net.init("d", np.float32(7))]), net.init("b", np.float32(-0.5))])
    model = net.model([("x", [3, 1, 4, 4])], [(y, [3, 5])])
    x = np.random.default_rng(1).uniform(0, 1, size=(3, 1, 4, 4)).astype(np.float32)
    _, ops = _check(kit, model, {"x": x})
    assert ops == {"Reshape": 1, "MultiThreshold": 3, "MatMul": 3, "Mul": 1, "Add": 1}


@pytest.mark.parametrize("rank", [3, 4])
def test_cnn_depthwise_grouped_maxpool(kit, rank):
    net = Net(kit, seed=3)
    sp = [8] * (rank - 2)
    h = net.quant("x", 0.05, 8)
    act_scale = np.random.default_rng(0).uniform(0.1, 0.3, [1, 8] + [1] * (rank - 2)).astype(np.float32)
    h = net.quant(net.op("Relu", [net.bn(net.conv(h, 3, 8, rank=rank), 8)]), act_scale, 4, signed=0)  # per channel
    h = net.op("MaxPool", [h], kernel_shape=[2] * (rank - 2), strides=[2] * (rank - 2))
    h = net.quant(net.op("Relu", [net.bn(net.conv(h, 8, 8, group=8, rank=rank), 8)]), 0.2, 4, signed=0)  # depthwise
    h = net.quant(net.bn(net.conv(h, 8, 8, group=2, rank=rank), 8, gamma=np.float32([1, -1, 2, 0, 1e-10, -0.5, 1, 1])), 0.3, 4)
    y = net.conv(h, 8, 4, k=1, rank=rank, pads=0, per_channel=False)
    model = net.model([("x", [2, 3] + sp)], [(y, [2, 4] + [4] * (rank - 2))])
    x = np.random.default_rng(2).normal(size=[2, 3] + sp).astype(np.float32)
    _, ops = _check(kit, model, {"x": x})
    assert ops["Conv"] == 4 and ops["MultiThreshold"] == 4 and ops.get("Mul", 0) == 1


def test_residual_with_shared_quantizer_fan_out(kit):
    net = Net(kit, seed=4)
    h = net.quant("x", 0.03, 8)
    a = net.quant(net.op("Relu", [net.bn(net.conv(h, 3, 6), 6)]), 0.25, 4, signed=0)  # feeds conv and the join
    b = net.quant(net.op("Relu", [net.bn(net.conv(a, 6, 6), 6)]), 0.3, 4, signed=0)
    b = net.quant(net.op("Relu", [net.bn(net.conv(b, 6, 6), 6)]), 0.25, 4, signed=0)  # same scale as a
    s = net.op("Add", [a, b])
    o = net.quant(net.op("Relu", [s]), 0.4, 4, signed=0)
    c = net.quant(o, 0.7, 4)  # o fans out: identity branch and conv branch
    d = net.quant(net.bn(net.conv(o, 6, 6, k=1, pads=0), 6), 0.7, 4)
    y = net.quant(net.op("Add", [c, d]), 0.06, 8)
    model = net.model([("x", [2, 3, 6, 6])], [(y, [2, 6, 6, 6])])
    x = np.random.default_rng(3).normal(size=(2, 3, 6, 6)).astype(np.float32)
    _, ops = _check(kit, model, {"x": x})
    assert ops == {"MultiThreshold": 8, "Conv": 4, "Add": 2, "Mul": 1}


def test_3d_matmul_token_mlp(kit):
    net = Net(kit, seed=5)
    h = net.quant("x", 0.02, 8)
    h = net.linear(h, 8, 16, bits=4)
    h = net.op("Add", [net.op("Mul", [h, net.init("g", np.random.default_rng(0).uniform(-1, 1, 16).astype(np.float32))]),
                       net.init("beta", np.random.default_rng(1).normal(size=16).astype(np.float32))])
    h = net.quant(net.op("Relu", [h]), 0.1, 4, signed=0)
    y = net.linear(h, 16, 6, bits=4, per_channel=False)
    model = net.model([("x", [2, 5, 8])], [(y, [2, 5, 6])])
    x = np.random.default_rng(4).normal(size=(2, 5, 8)).astype(np.float32)
    _, ops = _check(kit, model, {"x": x})
    assert ops == {"MultiThreshold": 2, "MatMul": 2, "Mul": 1}


def test_unconvertible_quantizer_is_reported_not_raised(kit):
    net = Net(kit, seed=6)
    h = net.quant("x", 0.01, 12)  # > max_bits
    y = net.linear(h, 4, 3)
    model = net.model([("x", [2, 4])], [(y, [2, 3])])
    p = Streamline(max_bits=8)
    p(model)
    assert any("12-bit" in line for line in p.declined)
    rows = streamline_report(model)
    assert any(op == "Quant" and "max_bits" in reason for _, op, reason in rows)
