"""Front end: weight quantizers -> integer initializers + scale Mul, activation quantizers -> MultiThreshold."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")

W_PARAMS = lambda s, bits=4: [("ws", np.asarray(s, np.float32)), ("wz", np.float32(0)), ("wb", np.float32(bits))]  # noqa: E731


def _wq(kit, **kw):
    return kit.quant("w", "ws", "wz", "wb", "wq", narrow=1, **kw)


@pytest.mark.parametrize("per_channel", [False, True])
def test_matmul_weight_quant_through_transpose(kit, per_channel):
    rng = np.random.default_rng(0)
    w = rng.normal(size=(6, 5)).astype(np.float32)  # (out, in) as Brevitas stores it
    s = rng.uniform(0.05, 0.2, size=(6, 1)).astype(np.float32) if per_channel else np.float32(0.1)
    nodes = [_wq(kit), kit.node("Transpose", ["wq"], ["wt"], perm=[1, 0]), kit.node("MatMul", ["x", "wt"], ["y"])]
    model = kit.model(nodes, [("x", [3, 5])], [("y", [3, 6])], [("w", w)] + W_PARAMS(s))
    x = rng.normal(size=(3, 5)).astype(np.float32)
    kit.check(model, "fold-weight-quant, fold-constants", {"x": x}, exact=False)
    assert kit.ops(model) == {"MatMul": 1, "Mul": 1}
    (wint,) = [c[0] for c in kit.consts(model, "MatMul")]
    assert wint.shape == (5, 6) and np.array_equal(wint, np.round(wint)) and np.abs(wint).max() <= 7
    (mul_c,) = [c[0] for c in kit.consts(model, "Mul")]
    assert mul_c.shape == ((1, 6) if per_channel else ())


def test_weight_on_the_left_operand(kit):
    rng = np.random.default_rng(1)
    w = rng.normal(size=(4, 5)).astype(np.float32)
    s = rng.uniform(0.05, 0.2, size=(4, 1)).astype(np.float32)  # per output row of W @ x
    nodes = [_wq(kit), kit.node("MatMul", ["wq", "x"], ["y"])]
    model = kit.model(nodes, [("x", [5, 3])], [("y", [4, 3])], [("w", w)] + W_PARAMS(s))
    kit.check(model, "fold-weight-quant", {"x": rng.normal(size=(5, 3)).astype(np.float32)}, exact=False)
    assert kit.ops(model) == {"MatMul": 1, "Mul": 1}
    assert kit.consts(model, "Mul")[0][0].shape == (4, 1)


def test_per_input_channel_scale_is_refused_with_reason(kit):
    rng = np.random.default_rng(2)
    w = rng.normal(size=(5, 6)).astype(np.float32)  # (K, N) used directly
    s = rng.uniform(0.05, 0.2, size=(5, 1)).astype(np.float32)  # varies along K
    model = kit.model([_wq(kit), kit.node("MatMul", ["x", "wq"], ["y"])], [("x", [2, 5])], [("y", [2, 6])],
                      [("w", w)] + W_PARAMS(s))
    p = kit.check(model, "fold-weight-quant", {"x": rng.normal(size=(2, 5)).astype(np.float32)})
    assert kit.ops(model) == {"MatMul": 1}
    assert any("reduction axis" in line for line in kit.declined(p))


@pytest.mark.parametrize(("group", "cin", "cout", "rank"), [(1, 3, 4, 4), (3, 3, 6, 4), (2, 4, 4, 3)])
def test_conv_weight_quant_per_output_channel(kit, group, cin, cout, rank):
    rng = np.random.default_rng(3)
    k = [3] * (rank - 2)
    w = rng.normal(size=[cout, cin // group] + k).astype(np.float32)
    s = rng.uniform(0.05, 0.2, size=[cout] + [1] * (rank - 1)).astype(np.float32)
    xshape = [2, cin] + [5] * (rank - 2)
    nodes = [_wq(kit), kit.node("Conv", ["x", "wq"], ["y"], group=group, pads=[1] * (2 * (rank - 2)))]
    model = kit.model(nodes, [("x", xshape)], [("y", [2, cout] + [5] * (rank - 2))], [("w", w)] + W_PARAMS(s))
    kit.check(model, "fold-weight-quant", {"x": rng.normal(size=xshape).astype(np.float32)}, exact=False)
    assert kit.ops(model) == {"Conv": 1, "Mul": 1}
    assert kit.consts(model, "Mul")[0][0].shape == tuple([1, cout] + [1] * (rank - 2))


def test_quantized_conv_bias_becomes_add_after_scale_mul(kit):
    """Conv(x, Wq, bq) -> Conv(x, W_int) -> Mul(s_w) -> Add(b): never Mul(s_b) on an integer bias."""
    rng = np.random.default_rng(4)
    w = rng.normal(size=(4, 3, 3, 3)).astype(np.float32)
    b = rng.normal(size=(4,)).astype(np.float32)
    nodes = [
        _wq(kit),
        kit.quant("b", "bs", "wz", "bb", "bq", signed=1),
        kit.node("Conv", ["x", "wq", "bq"], ["y"], pads=[1, 1, 1, 1]),
    ]
    inits = [("w", w), ("b", b), ("bs", np.float32(0.001)), ("bb", np.float32(32))] + W_PARAMS(np.float32(0.05))
    model = kit.model(nodes, [("x", [1, 3, 6, 6])], [("y", [1, 4, 6, 6])], inits)
    kit.check(model, "qonnx-to-finn", {"x": rng.normal(size=(1, 3, 6, 6)).astype(np.float32)}, exact=False)
    order = [n.op_type for n in model.graph]
    assert order == ["Conv", "Mul", "Add"], order
    conv = next(n for n in model.graph if n.op_type == "Conv")
    assert len([v for v in conv.inputs if v is not None]) == 2


def test_gemm_with_quantized_bias(kit):
    rng = np.random.default_rng(5)
    w = rng.normal(size=(6, 5)).astype(np.float32)
    b = rng.normal(size=(6,)).astype(np.float32)
    nodes = [
        _wq(kit),
        kit.quant("b", "bs", "wz", "bb", "bq", signed=1),
        kit.node("Gemm", ["x", "wq", "bq"], ["y"], transB=1),
    ]
    inits = [("w", w), ("b", b), ("bs", np.float32(0.001)), ("bb", np.float32(32))] + W_PARAMS(np.float32(0.05))
    model = kit.model(nodes, [("x", [2, 5])], [("y", [2, 6])], inits)
    kit.check(model, "qonnx-to-finn", {"x": rng.normal(size=(2, 5)).astype(np.float32)}, exact=False)
    assert [n.op_type for n in model.graph] == ["MatMul", "Mul", "Add"]


def test_activation_refusals_are_collected(kit):
    nodes = [
        kit.quant("x", "s", "zp", "b4", "a"),  # non-zero zero-point
        kit.quant("a", "s", "z", "b16", "c"),  # too many bits
        kit.quant("c", "x2", "z", "b4", "d"),  # run-time scale
        kit.quant("d", "s", "z", "b4", "y"),  # fine
    ]
    inits = [("s", np.float32(0.1)), ("z", np.float32(0)), ("zp", np.float32(2)), ("b4", np.float32(4)),
             ("b16", np.float32(16))]
    model = kit.model(nodes, [("x", [2, 3]), ("x2", [2, 3])], [("y", [2, 3])], inits)
    feeds = {"x": np.float32([[0.1, -0.3, 0.5], [1, 2, -1]]), "x2": np.full((2, 3), 0.2, np.float32)}
    p = kit.check(model, "quant-to-multithreshold{max_bits=8}", feeds)
    lines = kit.declined(p)
    assert len(lines) == 3
    assert any("zero-point" in line for line in lines)
    assert any("16-bit" in line and "max_bits=8" in line for line in lines)
    assert any("non-constant" in line for line in lines)
    assert kit.ops(model)["MultiThreshold"] == 1 and kit.ops(model)["Quant"] == 3


def test_trunc_to_multithreshold_exact(kit):
    rng = np.random.default_rng(6)
    nodes = [
        kit.node("AveragePool", ["x"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
        kit.node("Trunc", ["p", "s", "z", "ib", "os", "ob"], ["y"], domain=kit.QONNX, rounding_mode="FLOOR", signed=0),
    ]
    inits = [("s", np.float32(0.25 * 0.15)), ("z", np.float32(0)), ("ib", np.float32(6)), ("os", np.float32(0.15 / 16)),
             ("ob", np.float32(8))]
    model = kit.model(nodes, [("x", [2, 3, 4, 4])], [("y", [2, 3, 2, 2])], inits)
    x = (rng.integers(0, 16, size=(2, 3, 4, 4)) * 0.15).astype(np.float32)
    kit.check(model, "trunc-to-multithreshold, avgpool-to-sumpool, absorb-into-multithreshold", {"x": x})
    assert kit.ops(model) == {"Conv": 1, "MultiThreshold": 1, "Mul": 1}
    ones = kit.consts(model, "Conv")[0][0]
    assert np.all(ones == 1) and ones.shape == (3, 1, 2, 2)


def test_trunc_v1_refused(kit):
    nodes = [kit.node("Trunc", ["x", "s", "z", "ib", "ob"], ["y"], domain=kit.QONNX)]
    inits = [("s", np.float32(1)), ("z", np.float32(0)), ("ib", np.float32(8)), ("ob", np.float32(4))]
    model = kit.model(nodes, [("x", [2, 3])], [("y", [2, 3])], inits, qonnx_opset=1)
    p = kit.apply(model, "trunc-to-multithreshold")
    assert any("version 1" in line for line in kit.declined(p))


def test_sign_to_threshold(kit):
    model = kit.model([kit.node("Sign", ["x"], ["y"])], [("x", [1, 6])], [("y", [1, 6])])
    x = np.float32([[-2, -1e-45, -0.0, 0.0, 1e-45, 3]])
    kit.check(model, "sign-to-threshold", {"x": x})
    assert kit.ops(model) == {"MultiThreshold": 1}


def test_avgpool_without_threshold_consumer_is_left(kit):
    model = kit.model([kit.node("AveragePool", ["x"], ["y"], kernel_shape=[2, 2])], [("x", [1, 2, 4, 4])],
                      [("y", [1, 2, 3, 3])])
    p = kit.apply(model, "avgpool-to-sumpool")
    assert kit.ops(model) == {"AveragePool": 1}
    assert kit.declined(p)
