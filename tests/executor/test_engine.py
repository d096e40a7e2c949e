"""Executor mechanics: ordering, freeing, input checks, error messages, symbolic batch."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper

from qonnx_tools._ir import ir
from qonnx_tools.errors import BadInputError, ExecutionError, InputMismatchError, UnsupportedOpError
from qonnx_tools.executor import Executor, execute, register

TEST_DOMAIN = "qonnx_tools.test"


@register("Twice", domain=TEST_DOMAIN)
def _twice(ctx, x):
    return x * 2


@register("Explode", domain=TEST_DOMAIN)
def _explode(ctx, x):
    raise ValueError("kaboom")


def _model(nodes, inputs=(("x", ["N", 3]),), outputs=(("y", ["N", 3]),), inits=()):
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in outputs],
        list(inits),
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid(TEST_DOMAIN, 1)])
    return ir.from_proto(proto)


def _chain():
    # deliberately listed out of order: the executor must sort
    return _model(
        [
            helper.make_node("Twice", ["b"], ["y"], name="third", domain=TEST_DOMAIN),
            helper.make_node("Twice", ["x"], ["a"], name="first", domain=TEST_DOMAIN),
            helper.make_node("Identity", ["a"], ["b"], name="second"),
        ]
    )


def test_runs_out_of_order_graph_with_any_batch():
    executor = Executor(_chain())
    for batch in (1, 5):
        x = np.arange(batch * 3, dtype=np.float32).reshape(batch, 3)
        np.testing.assert_array_equal(executor.run({"x": x})["y"], x * 4)


def test_intermediates_freed_unless_kept():
    executor = Executor(_chain())
    frees = {step.node.name: step.free_after for step in executor._steps}
    assert frees == {"first": ("x",), "second": ("a",), "third": ("b",)}
    x = np.ones((2, 3), np.float32)
    assert set(executor.run({"x": x})) == {"y"}
    kept = executor.run({"x": x}, keep_intermediates=True)
    assert set(kept) == {"x", "a", "b", "y"}
    np.testing.assert_array_equal(kept["a"], x * 2)


def test_substitute_feeds_consumers_but_returns_computed_value():
    """first: a = 2x; second: b = a; third: y = 2b. Substituting a = z gives y = 2z, while the
    returned 'a' is still what the first node computed."""
    executor = Executor(_chain())
    x = np.ones((2, 3), np.float32)
    z = np.full((2, 3), 7.0, np.float32)
    kept = executor.run({"x": x}, keep_intermediates=True, substitute={"a": z})
    np.testing.assert_array_equal(kept["a"], x * 2)
    np.testing.assert_array_equal(kept["b"], z)
    np.testing.assert_array_equal(kept["y"], z * 2)
    np.testing.assert_array_equal(executor.run({"x": x})["y"], x * 4)  # nothing sticks
    with pytest.raises(BadInputError, match="'x' is not produced by any node"):
        executor.run({"x": x}, substitute={"x": z})


def test_hooks_see_inputs_and_intermediates_without_keeping_them():
    executor = Executor(_chain())
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    seen: dict[str, list[np.ndarray]] = {"x": [], "a": [], "y": []}
    result = executor.run({"x": x}, hooks={name: seen[name].append for name in seen})
    assert set(result) == {"y"}  # hooking does not keep anything alive
    assert [len(v) for v in seen.values()] == [1, 1, 1]
    for name, factor in (("x", 1), ("a", 2), ("y", 4)):
        np.testing.assert_array_equal(seen[name][0], x * factor)
    assert executor.tensor_names == {"x", "a", "b", "y"}
    with pytest.raises(BadInputError, match="hooks: 'nope' is neither a graph input nor produced"):
        executor.run({"x": x}, hooks={"nope": print})


def test_missing_unknown_and_misshaped_inputs():
    executor = Executor(_chain())
    with pytest.raises(InputMismatchError, match="missing input 'x'"):
        executor.run({})
    with pytest.raises(InputMismatchError, match="unknown input"):
        executor.run({"x": np.ones((1, 3), np.float32), "z": np.ones(1)})
    with pytest.raises(InputMismatchError, match=r"expected shape .*got \(1, 4\)"):
        executor.run({"x": np.ones((1, 4), np.float32)})
    with pytest.raises(InputMismatchError, match="rank"):
        executor.run({"x": np.ones(3, np.float32)})
    with pytest.raises(InputMismatchError, match="expected float32"):
        executor.run({"x": np.array([["a", "b", "c"]])})


def test_float64_input_is_cast_to_declared_float32():
    out = execute(_chain(), {"x": np.ones((1, 3), np.float64)})["y"]
    assert out.dtype == np.float32


def test_unknown_op_names_node():
    model = _model([helper.make_node("Frobnicate", ["x"], ["y"], name="weird")])
    with pytest.raises(UnsupportedOpError, match="'weird'.*Frobnicate"):
        Executor(model)


def test_kernel_failure_names_node_op_and_shapes():
    model = _model([helper.make_node("Explode", ["x"], ["y"], name="boom", domain=TEST_DOMAIN)])
    with pytest.raises(ExecutionError, match=r"'boom' \(Explode\).*\(2, 3\):float32.*kaboom"):
        execute(model, {"x": np.ones((2, 3), np.float32)})


def test_cycle_is_reported():
    model = _model(
        [
            helper.make_node("Twice", ["x", "c"], ["b"], name="n1", domain=TEST_DOMAIN),
            helper.make_node("Twice", ["b"], ["c"], name="n2", domain=TEST_DOMAIN),
            helper.make_node("Identity", ["b"], ["y"], name="n3"),
        ]
    )
    with pytest.raises(Exception, match="cycle"):
        Executor(model)


def test_initializer_backed_input_is_optional_and_overridable():
    w = helper.make_tensor("w", TensorProto.FLOAT, [1, 3], [1.0, 2.0, 3.0])
    model = _model(
        [helper.make_node("Identity", ["w"], ["y"])],
        inputs=(("x", ["N", 3]), ("w", [1, 3])),
        outputs=(("y", [1, 3]),),
        inits=[w],
    )
    executor = Executor(model)
    assert executor.input_names == ["x"]
    np.testing.assert_array_equal(executor.run({"x": np.ones((1, 3), np.float32)})["y"], [[1, 2, 3]])
    override = np.full((1, 3), 7, np.float32)
    np.testing.assert_array_equal(executor.run({"x": np.ones((1, 3), np.float32), "w": override})["y"], override)
