"""remove-identity: Identity and inference-mode Dropout removed, graph output names kept.

Numerics come from an independent source: onnxruntime on the unmodified model,
NumPy formulas, or the executor run on the model *before* the pass.
"""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper

from qonnx_tools._ir import ir
from qonnx_tools.runtime import run_onnxruntime
from qonnx_tools.testing import make_model, make_proto, op_types, output_names, run_pass

F = TensorProto.FLOAT
X = np.array([[0.5, -1.25, 2.0], [-0.75, 3.5, -4.0]], np.float32)


def test_identity_chain_removed_and_output_name_kept():
    nodes = [
        helper.make_node("Relu", ["x"], ["r"]),
        helper.make_node("Identity", ["r"], ["i1"]),
        helper.make_node("Identity", ["i1"], ["i2"]),
        helper.make_node("Neg", ["i2"], ["n"]),
        helper.make_node("Identity", ["n"], ["y"]),
    ]
    model = make_model(nodes, [("x", F, [2, 3])], [("y", F, [2, 3])])
    assert run_pass("remove-identity", model).modified
    assert op_types(model) == ["Relu", "Neg"] and output_names(model) == ["y"]
    np.testing.assert_array_equal(run_onnxruntime(model, {"x": X})["y"], -np.maximum(X, 0))
    assert not run_pass("remove-identity", model).modified


def test_identity_between_protected_values_is_kept():
    nodes = [
        helper.make_node("Identity", ["x"], ["y"]),  # graph input -> graph output
        helper.make_node("Relu", ["x"], ["r"]),
        helper.make_node("Identity", ["r"], ["z"]),  # graph output -> another graph output
        helper.make_node("Identity", ["w"], ["v"]),  # initializer -> graph output
    ]
    model = make_model(
        nodes,
        [("x", F, [2, 3])],
        [("y", F, [2, 3]), ("r", F, [2, 3]), ("z", F, [2, 3]), ("v", F, [1])],
        [("w", np.ones(1, np.float32))],
    )
    assert not run_pass("remove-identity", model).modified
    assert op_types(model) == ["Identity", "Relu", "Identity", "Identity"]
    assert output_names(model) == ["y", "r", "z", "v"]


@pytest.mark.parametrize("opset", [7, 11, 13])
def test_inference_dropout_removed(opset):
    nodes = [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Dropout", ["r"], ["y"])]
    model = make_model(nodes, [("x", F, [2, 3])], [("y", F, [2, 3])], opset=opset)
    assert run_pass("remove-identity", model).modified
    assert op_types(model) == ["Relu"] and output_names(model) == ["y"]


def test_dropout_with_constant_false_training_mode_removed():
    nodes = [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Dropout", ["r", "ratio", "mode"], ["d"]),
             helper.make_node("Neg", ["d"], ["y"])]
    inits = [("ratio", np.float32(0.3)), ("mode", np.array(False))]
    model = make_model(nodes, [("x", F, [2, 3])], [("y", F, [2, 3])], inits)
    assert run_pass("remove-identity", model).modified
    assert op_types(model) == ["Relu", "Neg"]


def test_dropout_kept_when_mask_used_or_training():
    nodes = [
        helper.make_node("Dropout", ["x"], ["d", "mask"]),
        helper.make_node("Cast", ["mask"], ["m"], to=F),
        helper.make_node("Dropout", ["x", "ratio", "mode"], ["t"]),
        helper.make_node("Dropout", ["x", "ratio", "dyn_mode"], ["u"]),
    ]
    inits = [("ratio", np.float32(0.3)), ("mode", np.array(True))]
    model = make_model(
        nodes,
        [("x", F, [2, 3]), ("dyn_mode", TensorProto.BOOL, [])],
        [("d", F, [2, 3]), ("m", F, [2, 3]), ("t", F, [2, 3]), ("u", F, [2, 3])],
        inits,
    )
    assert not run_pass("remove-identity", model).modified
    assert op_types(model).count("Dropout") == 3


def test_dropout_training_mode_read_at_an_opset_spelled_ai_onnx():
    """The opset is read whatever the domain's spelling: with ``"ai.onnx": 13`` the constant-True
    training_mode input counts (opset >= 12), so the Dropout stays."""
    nodes = [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Dropout", ["r", "ratio", "mode"], ["d"]),
             helper.make_node("Neg", ["d"], ["y"])]
    inits = [("ratio", np.float32(0.3)), ("mode", np.array(True))]
    proto = make_proto(nodes, [("x", F, [2, 3])], [("y", F, [2, 3])], inits)
    del proto.opset_import[:]
    proto.opset_import.append(helper.make_opsetid("ai.onnx", 13))
    model = ir.from_proto(proto)
    assert not run_pass("remove-identity", model).modified
    assert op_types(model) == ["Relu", "Dropout", "Neg"]


def test_a_cast_to_its_inputs_own_type_goes_and_a_real_cast_stays():
    """skl2onnx writes Cast(to=FLOAT) on a float input (models/digits); FINN leaves it on the host."""
    from qonnx_tools.testing import make_model, run_pass

    F, I = TensorProto.FLOAT, TensorProto.INT32
    nodes = [helper.make_node("Cast", ["x"], ["c"], to=F), helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("Cast", ["r"], ["y"], to=I)]
    model = make_model(nodes, [("x", F, [2])], [("y", I, [2])])
    assert run_pass("remove-identity", model).modified
    assert [n.op_type for n in model.graph] == ["Relu", "Cast"]
    assert model.graph.node(0).inputs[0].name == "x"
    out_cast = [helper.make_node("Cast", ["x"], ["y"], to=F)]  # a graph output fed by a graph input: kept
    kept = make_model(out_cast, [("x", F, [2])], [("y", F, [2])])
    assert not run_pass("remove-identity", kept).modified
