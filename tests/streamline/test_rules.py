"""Streamlining rules on handmade graphs: structure, numerics, fan-out, operand order, shapes."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")

R = np.random.default_rng(1234)


def rnd(*shape, lo=-2.0, hi=2.0):
    return R.uniform(lo, hi, size=shape).astype(np.float32)


def ints(*shape, lo=-3, hi=4):
    return R.integers(lo, hi, size=shape).astype(np.float32)


# -- move-mul-past-linear ----------------------------------------------------------------------------


@pytest.mark.parametrize("const_left", [False, True])
def test_scalar_mul_moves_past_matmul(kit, const_left):
    mul_in = ["c", "x"] if const_left else ["x", "c"]
    nodes = [kit.node("Mul", mul_in, ["m"]), kit.node("MatMul", ["m", "w"], ["y"])]
    model = kit.model(nodes, [("x", [3, 4])], [("y", [3, 5])], [("c", np.float32(0.25)), ("w", ints(4, 5))])
    kit.check(model, "move-mul-past-linear", {"x": ints(3, 4)})  # power of two: exact
    assert [n.op_type for n in model.graph] == ["MatMul", "Mul"]


def test_mul_past_3d_matmul_per_row_and_batch(kit):
    nodes = [kit.node("Mul", ["x", "c"], ["m"]), kit.node("MatMul", ["m", "w"], ["y"])]
    c = rnd(1, 6, 1, lo=0.1, hi=1)  # per row (sequence position): constant along K
    model = kit.model(nodes, [("x", [2, 6, 4])], [("y", [2, 6, 5])], [("c", c), ("w", ints(4, 5))])
    kit.check(model, "move-mul-past-linear", {"x": rnd(2, 6, 4)}, exact=False)
    assert [n.op_type for n in model.graph] == ["MatMul", "Mul"]


def test_per_input_channel_mul_does_not_move_past_matmul(kit):
    nodes = [kit.node("Mul", ["x", "c"], ["m"]), kit.node("MatMul", ["m", "w"], ["y"])]
    model = kit.model(nodes, [("x", [3, 4])], [("y", [3, 5])], [("c", rnd(4, lo=0.1, hi=1)), ("w", ints(4, 5))])
    p = kit.check(model, "move-mul-past-linear", {"x": rnd(3, 4)})
    assert [n.op_type for n in model.graph] == ["Mul", "MatMul"]
    assert any("reduction axis" in line for line in kit.declined(p))


def test_mul_right_operand_of_matmul(kit):
    nodes = [kit.node("Mul", ["x", "c"], ["m"]), kit.node("MatMul", ["a", "m"], ["y"])]
    c = rnd(1, 5, lo=0.1, hi=1)  # per column of the right operand
    model = kit.model(nodes, [("x", [4, 5]), ("a", [3, 4])], [("y", [3, 5])], [("c", c)])
    kit.check(model, "move-mul-past-linear", {"x": rnd(4, 5), "a": rnd(3, 4)}, exact=False)
    assert [n.op_type for n in model.graph] == ["MatMul", "Mul"]


def test_fan_out_mul_is_not_moved_for_the_other_consumer(kit):
    """A residual-style fan-out: the Add still sees the scaled value (FINN's bug would drop the scale)."""
    nodes = [
        kit.node("Mul", ["x", "c"], ["m"]),
        kit.node("MatMul", ["m", "w"], ["h"]),
        kit.node("Add", ["h", "m"], ["y"]),
    ]
    model = kit.model(nodes, [("x", [2, 4])], [("y", [2, 4])], [("c", np.float32(0.3)), ("w", ints(4, 4))])
    kit.check(model, "move-mul-past-linear", {"x": rnd(2, 4)}, exact=False)
    ops = kit.ops(model)
    assert ops["Mul"] == 2  # one moved after the MatMul, the original still feeding the Add


@pytest.mark.parametrize("rank", [3, 4])
def test_per_channel_mul_past_depthwise_conv_only(kit, rank):
    c = rnd(*([1, 4] + [1] * (rank - 2)), lo=0.1, hi=1)
    k = [3] * (rank - 2)
    xs = [2, 4] + [6] * (rank - 2)
    dw = kit.model(
        [kit.node("Mul", ["x", "c"], ["m"]), kit.node("Conv", ["m", "w"], ["y"], group=4, pads=[1] * (2 * (rank - 2)))],
        [("x", xs)], [("y", [2, 8] + [6] * (rank - 2))], [("c", c), ("w", ints(*([8, 1] + k)))],
    )
    kit.check(dw, "move-mul-past-linear", {"x": rnd(*xs)}, exact=False)
    assert [n.op_type for n in dw.graph] == ["Conv", "Mul"]
    full = kit.model(
        [kit.node("Mul", ["x", "c"], ["m"]), kit.node("Conv", ["m", "w"], ["y"], pads=[1] * (2 * (rank - 2)))],
        [("x", xs)], [("y", [2, 8] + [6] * (rank - 2))], [("c", c), ("w", ints(*([8, 4] + k)))],
    )
    p = kit.check(full, "move-mul-past-linear", {"x": rnd(*xs)})
    assert [n.op_type for n in full.graph] == ["Mul", "Conv"]
    assert any("not depthwise" in line for line in kit.declined(p))


def test_positive_mul_past_relu_negative_not(kit):
    pos = kit.model([kit.node("Mul", ["x", "c"], ["m"]), kit.node("Relu", ["m"], ["y"])], [("x", [2, 3])],
                    [("y", [2, 3])], [("c", rnd(3, lo=0.1, hi=2))])
    kit.check(pos, "move-mul-past-linear", {"x": rnd(2, 3)})
    assert [n.op_type for n in pos.graph] == ["Relu", "Mul"]
    neg = kit.model([kit.node("Mul", ["x", "c"], ["m"]), kit.node("Relu", ["m"], ["y"])], [("x", [2, 3])],
                    [("y", [2, 3])], [("c", np.float32([1, -1, 2]))])
    kit.check(neg, "move-mul-past-linear", {"x": rnd(2, 3)})
    assert [n.op_type for n in neg.graph] == ["Mul", "Relu"]


# -- move-add-past-linear ----------------------------------------------------------------------------


def test_add_past_matmul(kit):
    nodes = [kit.node("Add", ["b", "x"], ["m"]), kit.node("MatMul", ["m", "w"], ["y"])]
    model = kit.model(nodes, [("x", [3, 4])], [("y", [3, 5])], [("b", ints(4)), ("w", ints(4, 5))])
    kit.check(model, "move-add-past-linear", {"x": ints(3, 4)})
    assert [n.op_type for n in model.graph] == ["MatMul", "Add"]


def test_add_past_conv_only_without_padding(kit):
    b = rnd(1, 3, 1, 1)
    unpadded = kit.model([kit.node("Add", ["x", "b"], ["m"]), kit.node("Conv", ["m", "w"], ["y"], group=1)],
                         [("x", [1, 3, 5, 5])], [("y", [1, 2, 3, 3])], [("b", b), ("w", ints(2, 3, 3, 3))])
    kit.check(unpadded, "move-add-past-linear", {"x": rnd(1, 3, 5, 5)}, exact=False)
    assert [n.op_type for n in unpadded.graph] == ["Conv", "Add"]
    padded = kit.model([kit.node("Add", ["x", "b"], ["m"]), kit.node("Conv", ["m", "w"], ["y"], pads=[1, 1, 1, 1])],
                       [("x", [1, 3, 5, 5])], [("y", [1, 2, 5, 5])], [("b", b), ("w", ints(2, 3, 3, 3))])
    p = kit.check(padded, "move-add-past-linear", {"x": rnd(1, 3, 5, 5)})
    assert [n.op_type for n in padded.graph] == ["Add", "Conv"]
    assert any("pads" in line for line in kit.declined(p))


# -- move-past-maxpool / move-past-reshape ------------------------------------------------------------


def test_maxpool_positive_scale_and_bias_move(kit):
    nodes = [
        kit.node("Mul", ["x", "c"], ["m"]),
        kit.node("Add", ["m", "b"], ["a"]),
        kit.node("MaxPool", ["a"], ["y"], kernel_shape=[2, 2], strides=[2, 2]),
    ]
    model = kit.model(nodes, [("x", [2, 3, 4, 4])], [("y", [2, 3, 2, 2])],
                      [("c", rnd(1, 3, 1, 1, lo=0.1, hi=1)), ("b", rnd(1, 3, 1, 1))])
    kit.check(model, "move-past-maxpool", {"x": rnd(2, 3, 4, 4)})
    assert [n.op_type for n in model.graph] == ["MaxPool", "Mul", "Add"]


def test_maxpool_negative_scale_refused(kit):
    nodes = [kit.node("Mul", ["x", "c"], ["m"]), kit.node("MaxPool", ["m"], ["y"], kernel_shape=[2, 2])]
    model = kit.model(nodes, [("x", [1, 2, 3, 3])], [("y", [1, 2, 2, 2])], [("c", np.float32([1, -1]).reshape(1, 2, 1, 1))])
    p = kit.check(model, "move-past-maxpool", {"x": rnd(1, 2, 3, 3)})
    assert [n.op_type for n in model.graph] == ["Mul", "MaxPool"]
    assert any("not positive" in line for line in kit.declined(p))


def test_per_channel_past_transpose_and_reshape(kit):
    nodes = [
        kit.node("Mul", ["x", "c"], ["m"]),
        kit.node("Transpose", ["m"], ["t"], perm=[0, 2, 3, 1]),
        kit.node("Reshape", ["t", "shape"], ["y"]),
    ]
    model = kit.model(nodes, [("x", [2, 3, 2, 2])], [("y", [2, 4, 3])],
                      [("c", rnd(1, 3, 1, 1, lo=0.1, hi=1)), ("shape", np.int64([2, 4, 3]))])
    kit.check(model, "move-past-reshape", {"x": rnd(2, 3, 2, 2)})
    assert [n.op_type for n in model.graph] == ["Transpose", "Reshape", "Mul"]
    assert kit.consts(model, "Mul")[0][0].shape == (1, 1, 3)


def test_per_channel_past_flatten_only_while_it_stays_one_axis(kit):
    nodes = [kit.node("Mul", ["x", "c"], ["m"]), kit.node("Flatten", ["m"], ["y"], axis=1)]
    model = kit.model(nodes, [("x", [2, 3, 2, 2])], [("y", [2, 12])], [("c", rnd(1, 3, 1, 1, lo=0.1, hi=1))])
    kit.check(model, "move-past-reshape", {"x": rnd(2, 3, 2, 2)})
    assert [n.op_type for n in model.graph] == ["Flatten", "Mul"]
    assert kit.consts(model, "Mul")[0][0].shape == (1, 12)
    nodes2 = [kit.node("Mul", ["x", "c"], ["m"]), kit.node("Reshape", ["m", "shape"], ["y"])]
    split = kit.model(nodes2, [("x", [2, 3, 2, 2])], [("y", [2, 2, 6])],
                      [("c", rnd(1, 3, 1, 1, lo=0.1, hi=1)), ("shape", np.int64([2, 2, 6]))])
    p = kit.check(split, "move-past-reshape", {"x": rnd(2, 3, 2, 2)})
    assert [n.op_type for n in split.graph] == ["Mul", "Reshape"]
    assert any("per-element" in line for line in kit.declined(p))
    scalar = kit.model(nodes, [("x", [2, 3, 2, 2])], [("y", [2, 12])], [("c", np.float32(0.5))])
    kit.check(scalar, "move-past-reshape", {"x": rnd(2, 3, 2, 2)})
    assert [n.op_type for n in scalar.graph] == ["Flatten", "Mul"]


# -- move-add-past-mul / collapse / factor sign -----------------------------------------------------------


def test_add_past_mul_and_collapse(kit):
    nodes = [
        kit.node("Add", ["x", "b1"], ["a1"]),
        kit.node("Mul", ["a1", "c1"], ["m1"]),
        kit.node("Mul", ["c2", "m1"], ["m2"]),
        kit.node("Add", ["m2", "b2"], ["y"]),
    ]
    model = kit.model(nodes, [("x", [2, 3])], [("y", [2, 3])],
                      [("b1", rnd(3)), ("c1", np.float32(0.5)), ("c2", rnd(3)), ("b2", np.float32(1.5))])
    kit.check(model, "fixpoint{steps=4}(move-add-past-mul, collapse-repeated-ops)", {"x": rnd(2, 3)}, exact=False)
    assert [n.op_type for n in model.graph] == ["Mul", "Add"]


def test_collapse_keeps_first_for_other_consumer(kit):
    nodes = [kit.node("Mul", ["x", "c1"], ["m1"]), kit.node("Mul", ["m1", "c2"], ["y"]), kit.node("Relu", ["m1"], ["z"])]
    model = kit.model(nodes, [("x", [2, 3])], [("y", [2, 3]), ("z", [2, 3])], [("c1", np.float32(0.5)), ("c2", np.float32(4))])
    kit.check(model, "collapse-repeated-ops", {"x": rnd(2, 3)})
    assert kit.ops(model) == {"Mul": 2, "Relu": 1}


def test_factor_out_mul_sign(kit):
    model = kit.model([kit.node("Mul", ["x", "c"], ["y"])], [("x", [2, 3])], [("y", [2, 3])],
                      [("c", np.float32([0.5, -0.25, 3.0]))])
    kit.check(model, "factor-out-mul-sign", {"x": rnd(2, 3)})
    assert [c[0].tolist() for c in kit.consts(model, "Mul")] == [[1, -1, 1], [0.5, 0.25, 3.0]]
    again = kit.model([kit.node("Mul", ["x", "c"], ["y"])], [("x", [2, 3])], [("y", [2, 3])],
                      [("c", np.float32([0.5, -0.25, 3.0]))])
    kit.apply(again, "factor-out-mul-sign{require_absorbable=true}")
    assert kit.ops(again) == {"Mul": 1}  # nothing to absorb the sign into: left alone


@pytest.mark.parametrize("direction", ["up", "down"])
def test_absorb_sign_into_weights(kit, direction):
    sign = np.float32([1, -1, -1, 1])
    if direction == "up":
        nodes = [
            kit.node("MatMul", ["x", "w"], ["h"]),
            kit.node("Add", ["h", "b"], ["a"]),
            kit.node("Mul", ["a", "s"], ["y"]),
        ]
        inits = [("w", ints(3, 4)), ("b", rnd(4)), ("s", sign)]
        model = kit.model(nodes, [("x", [2, 3])], [("y", [2, 4])], inits)
        feeds = {"x": ints(2, 3)}
    else:
        nodes = [kit.node("Mul", ["s", "x"], ["m"]), kit.node("MatMul", ["m", "w"], ["y"])]
        model = kit.model(nodes, [("x", [2, 4])], [("y", [2, 3])], [("w", ints(4, 3)), ("s", sign)])
        feeds = {"x": ints(2, 4)}
    kit.check(model, "absorb-sign-mul-into-linear", feeds)
    assert "Mul" not in kit.ops(model)
    w = [c for c in kit.consts(model, "MatMul")][0][0]
    assert np.array_equal(w, np.round(w))


def test_absorb_sign_into_grouped_conv_weights(kit):
    sign = np.float32([1, -1, 1, -1, -1, 1]).reshape(1, 6, 1, 1)
    nodes = [kit.node("Conv", ["x", "w"], ["h"], group=2, pads=[1, 1, 1, 1]), kit.node("Mul", ["h", "s"], ["y"])]
    model = kit.model(nodes, [("x", [2, 4, 5, 5])], [("y", [2, 6, 5, 5])], [("w", ints(6, 2, 3, 3)), ("s", sign)])
    kit.check(model, "absorb-sign-mul-into-linear", {"x": ints(2, 4, 5, 5)})
    assert kit.ops(model) == {"Conv": 1}


def test_round_thresholds_on_integer_input(kit):
    nodes = [
        kit.node("MatMul", ["x", "w"], ["h"]),
        kit.node("MultiThreshold", ["h", "t"], ["y"], domain=kit.QONNX, data_layout="NC"),
    ]
    t = np.sort(rnd(4, 3, lo=-6, hi=6), axis=1)
    t[0, 0] = -1000.0
    t[1, 2] = 1000.0
    model = kit.model(nodes, [("x", [5, 3])], [("y", [5, 4])], [("w", ints(3, 4)), ("t", t)])
    from qonnx_tools.annotations import set_datatype
    from qonnx_tools.datatypes import DataType

    set_datatype(model.graph.inputs[0], DataType.parse("INT3"))
    kit.check(model, "round-thresholds", {"x": ints(5, 3, lo=-4, hi=4)})
    new = kit.consts(model, "MultiThreshold")[0][0]
    assert np.array_equal(new, np.round(new))
    assert new.min() >= -36 and new.max() <= 37  # clipped to the accumulator range [-36, 36] + 1


# -- residual joins, Concat, Split ----------------------------------------------------------------------


def test_residual_join_with_matching_scales(kit):
    nodes = [
        kit.node("Mul", ["a", "c"], ["ma"]),
        kit.node("Mul", ["c", "b"], ["mb"]),
        kit.node("Add", ["ma", "mb"], ["s"]),
        kit.node("MatMul", ["ma", "w"], ["z"]),  # fan-out of ma
    ]
    model = kit.model(nodes, [("a", [2, 4]), ("b", [2, 4])], [("s", [2, 4]), ("z", [2, 4])],
                      [("c", np.float32(0.37)), ("w", ints(4, 4))])
    kit.check(model, "move-scale-past-join, move-mul-past-linear", {"a": ints(2, 4), "b": ints(2, 4)}, exact=False)
    add = next(n for n in model.graph if n.op_type == "Add")
    assert all(v.producer() is None for v in add.inputs)  # Add(a, b) on the unscaled streams
    assert kit.ops(model) == {"Add": 1, "Mul": 2, "MatMul": 1}


def test_residual_join_with_different_scales_is_declined(kit):
    nodes = [kit.node("Mul", ["a", "c1"], ["ma"]), kit.node("Mul", ["b", "c2"], ["mb"]), kit.node("Add", ["ma", "mb"], ["s"])]
    model = kit.model(nodes, [("a", [2, 4]), ("b", [2, 4])], [("s", [2, 4])], [("c1", np.float32(0.5)), ("c2", np.float32(0.25))])
    p = kit.check(model, "move-scale-past-join", {"a": ints(2, 4), "b": ints(2, 4)})
    assert any("scales differ" in line for line in kit.declined(p))


def test_concat_and_split_of_scaled_streams(kit):
    nodes = [
        kit.node("Mul", ["a", "c1"], ["ma"]),
        kit.node("Mul", ["b", "c2"], ["mb"]),
        kit.node("Concat", ["ma", "mb"], ["cat"], axis=1),
        kit.node("Split", ["cat", "sizes"], ["s1", "s2"], axis=1),
    ]
    inits = [("c1", rnd(1, 2, 1, lo=0.1, hi=1)), ("c2", np.float32(0.5)), ("sizes", np.int64([1, 4]))]
    model = kit.model(nodes, [("a", [2, 2, 3]), ("b", [2, 3, 3])], [("s1", [2, 1, 3]), ("s2", [2, 4, 3])], inits)
    kit.check(model, "move-scale-past-join, move-scale-past-split", {"a": rnd(2, 2, 3), "b": rnd(2, 3, 3)})
    assert [n.op_type for n in model.graph][:2] == ["Concat", "Split"]
    assert kit.ops(model)["Mul"] == 2


# -- fan-out safety of absorbing ----------------------------------------------------------------------


def test_absorb_with_fan_out_keeps_the_op_for_other_consumers(kit):
    nodes = [
        kit.node("Mul", ["x", "c"], ["m"]),
        kit.node("MultiThreshold", ["m", "t"], ["y"], domain=kit.QONNX, data_layout="NC"),
        kit.node("Relu", ["m"], ["z"]),
    ]
    model = kit.model(nodes, [("x", [2, 3])], [("y", [2, 3]), ("z", [2, 3])],
                      [("c", np.float32(0.3)), ("t", np.float32([[0.1, 0.4]]))])
    kit.check(model, "absorb-into-multithreshold", {"x": rnd(2, 3)})
    mt = next(n for n in model.graph if n.op_type == "MultiThreshold")
    assert mt.inputs[0].name == "x"
    assert kit.ops(model) == {"Mul": 1, "MultiThreshold": 1, "Relu": 1}


def test_sign_not_pushed_into_weights_shared_by_another_consumer(kit):
    nodes = [
        kit.node("MatMul", ["x", "w"], ["h"]),
        kit.node("Mul", ["h", "s"], ["y"]),
        kit.node("Relu", ["h"], ["z"]),  # the MatMul output also feeds this: its weights must not change
    ]
    model = kit.model(nodes, [("x", [2, 3])], [("y", [2, 4]), ("z", [2, 4])],
                      [("w", ints(3, 4)), ("s", np.float32([1, -1, 1, -1]))])
    p = kit.check(model, "absorb-sign-mul-into-linear", {"x": ints(2, 3)})
    assert kit.ops(model) == {"MatMul": 1, "Mul": 1, "Relu": 1}
    assert any("other consumers" in line for line in kit.declined(p))


def test_add_past_matmul_with_constant_left_operand(kit):
    nodes = [kit.node("Add", ["x", "b"], ["m"]), kit.node("MatMul", ["w", "m"], ["y"])]
    model = kit.model(nodes, [("x", [4, 3])], [("y", [5, 3])], [("b", ints(4, 1)), ("w", ints(5, 4))])
    kit.check(model, "move-add-past-linear", {"x": ints(4, 3)})
    assert [n.op_type for n in model.graph] == ["MatMul", "Add"]


def test_moves_do_not_touch_graph_output_names(kit):
    nodes = [kit.node("Mul", ["x", "c"], ["m"]), kit.node("MaxPool", ["m"], ["y"], kernel_shape=[2, 2])]
    model = kit.model(nodes, [("x", [1, 2, 4, 4])], [("y", [1, 2, 3, 3])], [("c", np.float32(0.5))])
    kit.check(model, "move-past-maxpool", {"x": rnd(1, 2, 4, 4)})
    assert [v.name for v in model.graph.outputs] == ["y"]
    assert model.graph.outputs[0].producer().op_type == "Mul"


# -- streamline_report agrees with the datatype annotations ---------------------------------------


def _integer_mlp(kit):
    """x (float) -> MultiThreshold (UINT2) -> Reshape -> MatMul(integer weights in [-3, 3]) -> Mul(scalar) -> y."""
    thresholds = np.float32([[-0.5, 0.0, 0.5]])
    nodes = [
        kit.node("Reshape", ["x", "shape"], ["xr"]),
        kit.node("MultiThreshold", ["xr", "T"], ["a"], domain=kit.QONNX, out_dtype="UINT2"),
        kit.node("MatMul", ["a", "W"], ["acc"]),
        kit.node("Mul", ["acc", "s"], ["y"]),
    ]
    weights = ints(6, 3)
    weights[0, :2] = [-3, 3]
    inits = [("shape", np.int64([1, 6])), ("T", thresholds), ("W", weights), ("s", np.float32(0.25))]
    model = kit.model(nodes, [("x", [1, 2, 3])], [("y", [1, 3])], inits)
    kit.apply(model, "infer-datatypes")
    return model


def test_report_lists_a_node_whose_annotations_are_not_integer(kit):
    from qonnx_tools.annotations import get_datatype, set_datatype
    from qonnx_tools.datatypes import DataType
    from qonnx_tools.streamline import streamline_report

    model = _integer_mlp(kit)
    matmul = next(n for n in model.graph if n.op_type == "MatMul")
    weight, acc = matmul.inputs[1], matmul.outputs[0]
    # the Reshape of the float input and the trailing scalar Mul are float by design
    assert streamline_report(model) == []
    assert str(get_datatype(weight)) == "INT3"  # [-3, 3]: INT3 holds -4..3
    set_datatype(weight, DataType.parse("SCALEDINT<3>"))  # what a declared annotation on the weights said
    rows = streamline_report(model)
    assert [(op, "SCALEDINT<3>" in reason) for _, op, reason in rows] == [("MatMul", True)], rows
    kit.apply(model, "infer-datatypes")  # the values decide
    assert str(get_datatype(weight)) == "INT3" and streamline_report(model) == []
    set_datatype(acc, DataType.parse("FLOAT32"))
    rows = streamline_report(model)
    assert [(op, "FLOAT32" in reason) for _, op, reason in rows] == [("MatMul", True)], rows
