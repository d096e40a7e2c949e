"""pad-attrs-to-inputs: attribute forms that the model's opset no longer has become inputs.

Numerics come from onnxruntime on the rewritten model (checked by onnx's full checker first)
against NumPy formulas.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from qonnx_tools._ir import ir
from qonnx_tools.runtime import run_onnxruntime
from qonnx_tools.testing import make_model, make_proto, run_pass, serialized

F = TensorProto.FLOAT
X = np.array([[0.5, -1.25, 2.0], [-0.75, 3.5, -4.0]], np.float32)


ATTR_CASES = [
    ("Pad", 13, dict(pads=[0, 1, 0, 2], value=1.5, mode="constant"), 1,
     lambda x: [np.pad(x, ((0, 0), (1, 2)), constant_values=1.5)]),
    ("Pad", 11, dict(pads=[1, 0, 0, 0]), 1, lambda x: [np.pad(x, ((1, 0), (0, 0)))]),
    ("Pad", 13, dict(pads=[0, 1, 0, 1], mode="reflect"), 1, lambda x: [np.pad(x, ((0, 0), (1, 1)), mode="reflect")]),
    ("Clip", 13, dict(min=-0.5, max=1.0), 1, lambda x: [np.clip(x, -0.5, 1.0)]),
    ("Clip", 11, dict(max=1.0), 1, lambda x: [np.minimum(x, 1.0)]),
    ("Split", 13, dict(split=[1, 2], axis=1), 2, lambda x: [x[:, :1], x[:, 1:]]),
    ("Unsqueeze", 13, dict(axes=[0, 3]), 1, lambda x: [x[None, :, :, None]]),
    ("ReduceSum", 13, dict(axes=[1], keepdims=0), 1, lambda x: [x.sum(axis=1)]),
    ("ReduceMean", 18, dict(axes=[0]), 1, lambda x: [x.mean(axis=0, keepdims=True)]),
    ("ReduceMax", 18, dict(axes=[0, 1], keepdims=0), 1, lambda x: [np.asarray(x.max())]),
    ("Slice", 13, dict(starts=[1], ends=[3], axes=[1]), 1, lambda x: [x[:, 1:3]]),
    ("Slice", 10, dict(starts=[0, 1], ends=[1, 100]), 1, lambda x: [x[0:1, 1:]]),
    ("TopK", 13, dict(k=2, axis=1), 2, lambda x: [-np.sort(-x, axis=1)[:, :2], np.argsort(-x, axis=1)[:, :2]]),
]


@pytest.mark.parametrize(
    "op, opset, attrs, n_out, expect", ATTR_CASES, ids=[f"{c[0]}-{c[1]}-{i}" for i, c in enumerate(ATTR_CASES)]
)
def test_attrs_to_inputs(op, opset, attrs, n_out, expect):
    outs = [f"y{i}" for i in range(n_out)]
    nodes = [helper.make_node(op, ["x"], outs, **attrs)]
    declared = [
        helper.make_tensor_value_info(o, numpy_helper.from_array(np.asarray(e)).data_type, np.shape(e))
        for o, e in zip(outs, expect(X))
    ]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", F, [2, 3])], declared)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    proto.ir_version = 8
    model = ir.from_proto(proto)

    assert run_pass("pad-attrs-to-inputs", model).modified
    onnx.checker.check_model(ir.to_proto(model), full_check=True)
    got = run_onnxruntime(model, {"x": X})
    for name, want in zip(outs, expect(X)):
        np.testing.assert_allclose(got[name], want, rtol=1e-6)
    assert not run_pass("pad-attrs-to-inputs", model).modified
    moved = {k for k in attrs if k not in ("mode", "axis", "keepdims")}
    assert not moved & set(list(model.graph)[0].attributes)


def test_attrs_to_inputs_leaves_valid_forms_alone():
    nodes = [helper.make_node("Pad", ["x"], ["p"], pads=[0, 1, 0, 1], value=2.0),
             helper.make_node("Squeeze", ["p"], ["y"], axes=[0])]
    model = make_model(nodes, [("x", F, [1, 3])], [("y", F, [5])], opset=9)
    before = serialized(model)
    assert not run_pass("pad-attrs-to-inputs", model).modified
    assert serialized(model) == before


def test_attrs_to_inputs_drops_stale_attribute_when_input_present():
    nodes = [helper.make_node("Squeeze", ["x", "axes"], ["y"], axes=[1])]
    model = make_model(nodes, [("x", F, [1, 3])], [("y", F, [3])], [("axes", np.array([0], np.int64))])
    assert run_pass("pad-attrs-to-inputs", model).modified
    node = list(model.graph)[0]
    assert not node.attributes and node.inputs[1].name == "axes"
    np.testing.assert_array_equal(run_onnxruntime(model, {"x": X[:1]})["y"], X[0])


def test_attrs_to_inputs_reads_the_opset_whatever_the_domain_spelling():
    """A model importing the standard domain as ``"ai.onnx"`` (not ``""``) is at that opset:
    Pad-13's ``pads`` attribute becomes an input."""
    nodes = [helper.make_node("Pad", ["x"], ["y"], pads=[0, 1, 0, 2])]
    proto = make_proto(nodes, [("x", F, [2, 3])], [("y", F, [2, 6])])
    del proto.opset_import[:]
    proto.opset_import.append(helper.make_opsetid("ai.onnx", 13))
    model = ir.from_proto(proto)
    assert dict(model.opset_imports) == {"ai.onnx": 13}

    assert run_pass("pad-attrs-to-inputs", model).modified
    pad = list(model.graph)[0]
    assert "pads" not in pad.attributes
    assert pad.inputs[1].const_value.numpy().tolist() == [0, 1, 0, 2]
    np.testing.assert_array_equal(run_onnxruntime(model, {"x": X})["y"], np.pad(X, ((0, 0), (1, 2))))
