"""remove-noop-arith: x*1, x+0, x-0, x/1 removed only when the result keeps x's shape and type.

Numerics come from an independent source: onnxruntime on the unmodified model,
NumPy formulas, or the executor run on the model *before* the pass.
"""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper

from qonnx_tools.runtime import run_onnxruntime
from qonnx_tools.testing import make_model, op_types, output_names, run_pass

F = TensorProto.FLOAT
X = np.array([[0.5, -1.25, 2.0], [-0.75, 3.5, -4.0]], np.float32)


@pytest.mark.parametrize(
    "op, const_first, value",
    [("Mul", False, 1.0), ("Mul", True, 1.0), ("Add", False, 0.0), ("Add", True, 0.0), ("Add", False, -0.0),
     ("Sub", False, 0.0), ("Div", False, 1.0)],
)
@pytest.mark.parametrize("const_shape", [(), (1,), (3,), (1, 3), (2, 3), (1, 1)])
def test_noop_arith_removed(op, const_first, value, const_shape):
    const = np.full(const_shape, value, np.float32)
    operands = ["c", "r"] if const_first else ["r", "c"]
    nodes = [
        helper.make_node("Relu", ["x"], ["r"]),
        helper.make_node(op, operands, ["a"]),
        helper.make_node("Neg", ["a"], ["y"]),
    ]
    model = make_model(nodes, [("x", F, [2, 3])], [("y", F, [2, 3])], [("c", const)],
                       value_info=[helper.make_tensor_value_info("r", F, [2, 3])])
    assert run_pass("remove-noop-arith", model).modified
    assert op_types(model) == ["Relu", "Neg"]
    np.testing.assert_array_equal(run_onnxruntime(model, {"x": X})["y"], -np.maximum(X, 0))
    assert not run_pass("remove-noop-arith", model).modified


@pytest.mark.parametrize(
    "op, operands, const, why",
    [
        ("Mul", ["r", "c"], np.ones((2, 2, 3), np.float32), "broadcast adds a dimension"),
        ("Mul", ["c", "r"], np.ones((4, 1, 1), np.float32), "broadcast adds a dimension (left)"),
        ("Add", ["r", "c"], np.zeros((3, 2, 3), np.float32), "broadcast adds a dimension"),
        ("Mul", ["r", "c"], np.full((1, 3), 2.0, np.float32), "not neutral"),
        ("Mul", ["r", "c"], np.array([1.0, 1.0, 2.0], np.float32), "one element not neutral"),
        ("Sub", ["c", "r"], np.zeros((1,), np.float32), "0 - x is a negation"),
        ("Div", ["c", "r"], np.ones((1,), np.float32), "1 / x is a reciprocal"),
        ("Mul", ["r", "c"], np.full((1,), np.nan, np.float32), "nan"),
    ],
)
def test_noop_arith_kept(op, operands, const, why):
    nodes = [helper.make_node("Relu", ["x"], ["r"]), helper.make_node(op, operands, ["y"])]
    model = make_model(nodes, [("x", F, [2, 3])], [("y", F, None)], [("c", const)],
                       value_info=[helper.make_tensor_value_info("r", F, [2, 3])])
    assert not run_pass("remove-noop-arith", model).modified, why
    assert op_types(model) == ["Relu", op]


def test_noop_arith_needs_known_shape_unless_scalar():
    nodes = [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Mul", ["r", "one"], ["a"]),
             helper.make_node("Mul", ["a", "s"], ["y"])]
    # no shape for r or a: ones((1,)) could add a dimension to a rank-0 r; a scalar cannot
    model = make_model(nodes, [("x", F, None)], [("y", F, None)], [("one", np.ones(1, np.float32)), ("s", np.float32(1))])
    assert run_pass("remove-noop-arith", model).modified
    assert op_types(model) == ["Relu", "Mul"]
    (mul,) = [n for n in model.graph if n.op_type == "Mul"]
    assert mul.inputs[1].name == "one"


def test_noop_arith_ignores_overridable_and_dynamic_operands():
    nodes = [helper.make_node("Mul", ["x", "one"], ["a"]), helper.make_node("Add", ["a", "x2"], ["y"])]
    model = make_model(
        nodes, [("x", F, [3]), ("x2", F, [3])], [("y", F, [3])], [("one", np.ones(3, np.float32))],
        extra_inputs=[helper.make_tensor_value_info("one", F, [3])],
    )
    assert not run_pass("remove-noop-arith", model).modified


def test_noop_arith_integer_and_graph_output_naming():
    nodes = [helper.make_node("Abs", ["x"], ["r"]), helper.make_node("Add", ["zero", "r"], ["y"]),
             helper.make_node("Mul", ["x", "one"], ["z"])]
    model = make_model(
        nodes, [("x", TensorProto.INT32, [4])], [("y", TensorProto.INT32, [4]), ("z", TensorProto.INT32, [4])],
        [("zero", np.zeros(4, np.int32)), ("one", np.int32(1))],
        value_info=[helper.make_tensor_value_info("r", TensorProto.INT32, [4])],
    )
    assert run_pass("remove-noop-arith", model).modified
    # y's producer now is Abs (renamed to keep the output name); z = x * 1 stays (x is a graph input)
    assert op_types(model) == ["Abs", "Mul"] and output_names(model) == ["y", "z"]
    x = np.array([-3, 0, 7, -1], np.int32)
    np.testing.assert_array_equal(run_onnxruntime(model, {"x": x})["y"], np.abs(x))


def test_noop_arith_type_mismatch_kept():
    r = helper.make_tensor_value_info("r", TensorProto.DOUBLE, [3])
    nodes = [helper.make_node("Cast", ["x"], ["r"], to=TensorProto.DOUBLE), helper.make_node("Mul", ["r", "one"], ["y"])]
    # an (invalid) float constant against a double input must not be taken for a no-op
    model = make_model(nodes, [("x", F, [3])], [("y", TensorProto.DOUBLE, [3])], [("one", np.ones(3, np.float32))],
                       value_info=[r])
    assert not run_pass("remove-noop-arith", model).modified
