"""Cleanup passes on handmade graphs, and the ``cleanup`` pipeline on the shared corpus.

Numerics come from an independent source: onnxruntime on the unmodified model,
NumPy formulas, or the executor run on the model *before* the pass.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from qonnx_tools._ir import ir
from qonnx_tools.errors import BadInputError
from qonnx_tools.executor import Executor
from qonnx_tools.model_io import load
from qonnx_tools.passes import PassRecord, make_pass, parse_pipeline, registered_passes
from qonnx_tools.passes.cleanup import CLEANUP_PIPELINE, Cleanup, cleanup_pipeline_text
from qonnx_tools.runtime import only_standard_ops, random_inputs, run_onnxruntime
from qonnx_tools.testing import make_model, make_proto, shared_models

F = TensorProto.FLOAT
CLEANUP_PASSES = [
    "remove-identity", "remove-noop-arith", "remove-dead", "dedupe-initializers", "remove-static-inputs",
    "pad-attrs-to-inputs", "sort", "name-nodes", "cleanup", "fold-constants",
]


def run(name, model, **options):
    return make_pass(name, options)(model)


def ops(model):
    return [n.op_type for n in model.graph]


def out_names(model):
    return [v.name for v in model.graph.outputs]


def serialized(model) -> bytes:
    return ir.to_proto(model).SerializeToString()


X = np.array([[0.5, -1.25, 2.0], [-0.75, 3.5, -4.0]], np.float32)


@pytest.mark.parametrize("name", CLEANUP_PASSES)
def test_registered_with_summary(name):
    cls = registered_passes()[name]
    assert cls.name == name and cls.summary


# -- remove-identity ---------------------------------------------------------------


def test_identity_chain_removed_and_output_name_kept():
    nodes = [
        helper.make_node("Relu", ["x"], ["r"]),
        helper.make_node("Identity", ["r"], ["i1"]),
        helper.make_node("Identity", ["i1"], ["i2"]),
        helper.make_node("Neg", ["i2"], ["n"]),
        helper.make_node("Identity", ["n"], ["y"]),
    ]
    model = make_model(nodes, [("x", F, [2, 3])], [("y", F, [2, 3])])
    assert run("remove-identity", model).modified
    assert ops(model) == ["Relu", "Neg"] and out_names(model) == ["y"]
    np.testing.assert_array_equal(run_onnxruntime(model, {"x": X})["y"], -np.maximum(X, 0))
    assert not run("remove-identity", model).modified


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
    assert not run("remove-identity", model).modified
    assert ops(model) == ["Identity", "Relu", "Identity", "Identity"]
    assert out_names(model) == ["y", "r", "z", "v"]


@pytest.mark.parametrize("opset", [7, 11, 13])
def test_inference_dropout_removed(opset):
    nodes = [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Dropout", ["r"], ["y"])]
    model = make_model(nodes, [("x", F, [2, 3])], [("y", F, [2, 3])], opset=opset)
    assert run("remove-identity", model).modified
    assert ops(model) == ["Relu"] and out_names(model) == ["y"]


def test_dropout_with_constant_false_training_mode_removed():
    nodes = [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Dropout", ["r", "ratio", "mode"], ["d"]),
             helper.make_node("Neg", ["d"], ["y"])]
    inits = [("ratio", np.float32(0.3)), ("mode", np.array(False))]
    model = make_model(nodes, [("x", F, [2, 3])], [("y", F, [2, 3])], inits)
    assert run("remove-identity", model).modified
    assert ops(model) == ["Relu", "Neg"]


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
    assert not run("remove-identity", model).modified
    assert ops(model).count("Dropout") == 3


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
    assert not run("remove-identity", model).modified
    assert ops(model) == ["Relu", "Dropout", "Neg"]


# -- remove-noop-arith ---------------------------------------------------------------


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
    assert run("remove-noop-arith", model).modified
    assert ops(model) == ["Relu", "Neg"]
    np.testing.assert_array_equal(run_onnxruntime(model, {"x": X})["y"], -np.maximum(X, 0))
    assert not run("remove-noop-arith", model).modified


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
    assert not run("remove-noop-arith", model).modified, why
    assert ops(model) == ["Relu", op]


def test_noop_arith_needs_known_shape_unless_scalar():
    nodes = [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Mul", ["r", "one"], ["a"]),
             helper.make_node("Mul", ["a", "s"], ["y"])]
    # no shape for r or a: ones((1,)) could add a dimension to a rank-0 r; a scalar cannot
    model = make_model(nodes, [("x", F, None)], [("y", F, None)], [("one", np.ones(1, np.float32)), ("s", np.float32(1))])
    assert run("remove-noop-arith", model).modified
    assert ops(model) == ["Relu", "Mul"]
    (mul,) = [n for n in model.graph if n.op_type == "Mul"]
    assert mul.inputs[1].name == "one"


def test_noop_arith_ignores_overridable_and_dynamic_operands():
    nodes = [helper.make_node("Mul", ["x", "one"], ["a"]), helper.make_node("Add", ["a", "x2"], ["y"])]
    model = make_model(
        nodes, [("x", F, [3]), ("x2", F, [3])], [("y", F, [3])], [("one", np.ones(3, np.float32))],
        extra_inputs=[helper.make_tensor_value_info("one", F, [3])],
    )
    assert not run("remove-noop-arith", model).modified


def test_noop_arith_integer_and_graph_output_naming():
    nodes = [helper.make_node("Abs", ["x"], ["r"]), helper.make_node("Add", ["zero", "r"], ["y"]),
             helper.make_node("Mul", ["x", "one"], ["z"])]
    model = make_model(
        nodes, [("x", TensorProto.INT32, [4])], [("y", TensorProto.INT32, [4]), ("z", TensorProto.INT32, [4])],
        [("zero", np.zeros(4, np.int32)), ("one", np.int32(1))],
        value_info=[helper.make_tensor_value_info("r", TensorProto.INT32, [4])],
    )
    assert run("remove-noop-arith", model).modified
    # y's producer now is Abs (renamed to keep the output name); z = x * 1 stays (x is a graph input)
    assert ops(model) == ["Abs", "Mul"] and out_names(model) == ["y", "z"]
    x = np.array([-3, 0, 7, -1], np.int32)
    np.testing.assert_array_equal(run_onnxruntime(model, {"x": x})["y"], np.abs(x))


def test_noop_arith_type_mismatch_kept():
    r = helper.make_tensor_value_info("r", TensorProto.DOUBLE, [3])
    nodes = [helper.make_node("Cast", ["x"], ["r"], to=TensorProto.DOUBLE), helper.make_node("Mul", ["r", "one"], ["y"])]
    # an (invalid) float constant against a double input must not be taken for a no-op
    model = make_model(nodes, [("x", F, [3])], [("y", TensorProto.DOUBLE, [3])], [("one", np.ones(3, np.float32))],
                       value_info=[r])
    assert not run("remove-noop-arith", model).modified


# -- remove-dead -------------------------------------------------------------------------


def test_remove_dead_nodes_initializers_and_stale_value_info():
    nodes = [
        helper.make_node("Relu", ["x"], ["y"]),
        helper.make_node("Neg", ["x"], ["dead1"]),
        helper.make_node("Add", ["dead1", "w"], ["dead2"]),
    ]
    stale = helper.make_tensor_value_info("gone", F, [7])
    model = make_model(nodes, [("x", F, [2])], [("y", F, [2])], [("w", np.ones(2, np.float32)), ("unused", np.zeros(3))],
                       value_info=[stale, helper.make_tensor_value_info("dead2", F, [2])])
    assert run("remove-dead", model).modified
    assert ops(model) == ["Relu"] and not model.graph.initializers
    proto = ir.to_proto(model)
    assert [v.name for v in proto.graph.value_info] == []
    assert not run("remove-dead", model).modified


def test_remove_dead_reports_trimmed_optional_outputs():
    nodes = [helper.make_node("Dropout", ["x"], ["y", "mask"])]
    model = make_model(nodes, [("x", F, [2])], [("y", F, [2])])
    assert run("remove-dead", model).modified  # nothing removed but the unused mask output
    assert len(list(model.graph)[0].outputs) == 1
    assert not run("remove-dead", model).modified


def test_remove_dead_keeps_graph_inputs():
    model = make_model([helper.make_node("Relu", ["x"], ["y"])], [("x", F, [2]), ("unused_in", F, [2])], [("y", F, [2])])
    assert not run("remove-dead", model).modified
    assert [v.name for v in model.graph.inputs] == ["x", "unused_in"]


# -- dedupe-initializers / remove-static-inputs ----------------------------------------


def test_dedupe_initializers():
    a = np.arange(4, dtype=np.float32)
    nodes = [helper.make_node("Add", ["x", "a"], ["t"]), helper.make_node("Add", ["t", "b"], ["u"]),
             helper.make_node("Add", ["u", "c"], ["v"]), helper.make_node("Add", ["v", "d"], ["y"])]
    nodes[3:] = [helper.make_node("Cast", ["d"], ["df"], to=F), helper.make_node("Add", ["v", "df"], ["y"])]
    inits = [("a", a), ("b", a.copy()), ("c", a.copy()), ("d", a.astype(np.int64))]
    model = make_model(nodes, [("x", F, [4])], [("y", F, [4])], inits)
    assert run("dedupe-initializers", model).modified
    assert set(model.graph.initializers) == {"a", "d"}  # same bytes but another dtype is not merged
    np.testing.assert_array_equal(run_onnxruntime(model, {"x": a})["y"], 4 * a + a)
    assert not run("dedupe-initializers", model).modified


def test_dedupe_respects_size_limit_and_graph_inputs():
    a = np.ones(10, np.float32)
    nodes = [helper.make_node("Add", ["x", "a"], ["t"]), helper.make_node("Add", ["t", "b"], ["u"]),
             helper.make_node("Add", ["u", "c"], ["y"])]
    model = make_model(nodes, [("x", F, [10])], [("y", F, [10])], [("a", a), ("b", a), ("c", a)],
                       extra_inputs=[helper.make_tensor_value_info("c", F, [10])])
    assert not run("dedupe-initializers", model, size_limit=9).modified
    assert run("dedupe-initializers", model, size_limit=10).modified
    assert set(model.graph.initializers) == {"a", "c"}  # c is a graph input: never merged


def test_remove_static_inputs():
    nodes = [helper.make_node("Add", ["x", "w"], ["y"])]
    model = make_model(nodes, [("x", F, [2])], [("y", F, [2])], [("w", np.ones(2, np.float32))],
                       extra_inputs=[helper.make_tensor_value_info("w", F, [2])])
    assert run("remove-static-inputs", model).modified
    assert [v.name for v in model.graph.inputs] == ["x"] and "w" in model.graph.initializers
    assert not run("remove-static-inputs", model).modified


# -- sort / name-nodes -----------------------------------------------------------------


def test_sort():
    nodes = [helper.make_node("Neg", ["r"], ["y"]), helper.make_node("Relu", ["x"], ["r"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", F, [2])],
                              [helper.make_tensor_value_info("y", F, [2])])
    model = ir.from_proto(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]))
    assert run("sort", model).modified
    assert ops(model) == ["Relu", "Neg"]
    assert not run("sort", model).modified


def _unnamed_model():
    x = ir.Value(name="x", shape=ir.Shape([2]), type=ir.TensorType(ir.DataType.FLOAT))
    relu = ir.Node("", "Relu", [x])
    neg = ir.Node("", "Neg", [relu.outputs[0]], name="/block/neg")
    relu2 = ir.Node("", "Relu", [neg.outputs[0]], name="/block/neg")  # duplicate name
    relu3 = ir.Node("", "Relu", [relu2.outputs[0]], name="Relu_0")  # takes the name an unnamed Relu would get
    relu3.outputs[0].name = "y"
    relu3.outputs[0].type, relu3.outputs[0].shape = x.type, x.shape
    graph = ir.Graph([x], [relu3.outputs[0]], nodes=[relu, neg, relu2, relu3], opset_imports={"": 13}, name="g")
    relu.name = None  # onnx_ir names what is added to a graph; undo that
    for node in (relu, neg, relu2):
        node.outputs[0].name = None
    return ir.Model(graph, ir_version=8)


def test_name_nodes_keeps_unique_names_and_names_the_rest():
    model = _unnamed_model()
    assert run("name-nodes", model).modified
    assert [n.name for n in model.graph] == ["Relu_1", "/block/neg", "Relu_2", "Relu_0"]
    names = [v.name for n in model.graph for v in n.outputs]
    assert all(names) and len(set(names)) == len(names) and names[-1] == "y"
    assert names[0] == "Relu_1_out0"
    assert [v.name for v in model.graph.inputs] == ["x"] and out_names(model) == ["y"]
    onnx.checker.check_model(ir.to_proto(model), full_check=True)
    before = serialized(model)
    assert not run("name-nodes", model).modified
    assert serialized(model) == before


def test_name_nodes_rename_all_is_positional():
    model = _unnamed_model()
    assert run("name-nodes", model, rename_all=True).modified
    assert [n.name for n in model.graph] == ["Relu_0", "Neg_0", "Relu_1", "Relu_2"]
    assert not run("name-nodes", model, rename_all=True).modified


# -- cleanup ------------------------------------------------------------------------------


def _messy_model():
    """Brevitas-like: weights as graph inputs, identities, x*1, constant subgraph, dead code, duplicates."""
    w = np.array([[0.5, -1.0], [2.0, 0.25], [-0.5, 1.5]], np.float32)
    nodes = [
        helper.make_node("Identity", ["x"], ["xi"]),
        helper.make_node("Transpose", ["wt"], ["w"], perm=[1, 0]),
        helper.make_node("Mul", ["w", "two"], ["w2"]),
        helper.make_node("MatMul", ["xi", "w2"], ["h"], name="mm"),
        helper.make_node("Mul", ["one", "h"], ["h1"], name="mm"),
        helper.make_node("Add", ["h1", "zero"], ["h2"]),
        helper.make_node("Dropout", ["h2"], ["h3"]),
        helper.make_node("Add", ["h3", "b1"], ["h4"]),
        helper.make_node("Add", ["h4", "b2"], ["h5"]),
        helper.make_node("Relu", ["h5"], ["y"]),
        helper.make_node("Neg", ["h5"], ["dead"]),
    ]
    inits = [("wt", w.T.copy()), ("two", np.float32(2)), ("one", np.ones((1, 2), np.float32)),
             ("zero", np.float32(0)), ("b1", np.array([0.1, 0.2], np.float32)), ("b2", np.array([0.1, 0.2], np.float32)),
             ("unused", np.ones(3, np.float32))]
    extra = [
        helper.make_tensor_value_info(n, numpy_helper.from_array(np.asarray(a)).data_type, np.shape(a))
        for n, a in inits
    ]
    return make_model(nodes, [("x", F, [4, 3])], [("y", F, [4, 2])], inits, extra_inputs=extra)


def test_cleanup_on_a_messy_model():
    model = _messy_model()
    x = np.random.default_rng(3).standard_normal((4, 3)).astype(np.float32)
    w = np.array([[0.5, -1.0], [2.0, 0.25], [-0.5, 1.5]], np.float32)
    bias = np.array([0.1, 0.2], np.float32)
    before = np.maximum(x @ (w * 2) + bias + bias, 0)  # onnxruntime refuses the duplicate node names
    cleanup = Cleanup()

    assert cleanup(model).modified
    assert ops(model) == ["MatMul", "Add", "Add", "Relu"]
    assert [v.name for v in model.graph.inputs] == ["x"] and out_names(model) == ["y"]
    assert len(model.graph.initializers) == 2  # the folded weight and one of the equal biases
    np.testing.assert_allclose(run_onnxruntime(model, {"x": x})["y"], before, rtol=1e-6)
    np.testing.assert_allclose(Executor(model).run({"x": x})["y"], before, rtol=1e-6)
    names = [n.name for n in model.graph]
    assert len(set(names)) == len(names) and all(names)
    onnx.checker.check_model(ir.to_proto(model), full_check=True)

    records = cleanup.last_records
    assert records and all(isinstance(r, PassRecord) for r in records)
    assert {r.name for r in records} >= {"remove-static-inputs", "fold-constants", "remove-dead", "name-nodes"}

    first = serialized(model)
    assert not cleanup(model).modified
    assert serialized(model) == first
    assert not any(r.modified for r in cleanup.last_records)


def test_cleanup_pipeline_text_and_options():
    text = cleanup_pipeline_text()
    for name in ("remove-static-inputs", "sort", "fixpoint{steps=8}(remove-identity, remove-noop-arith, fold-constants,",
                 "dedupe-initializers", "name-nodes"):
        assert name in text
    for optional in ("infer-shapes", "infer-datatypes"):
        assert (optional in text) == (optional in registered_passes())
    assert "fold-constants{fold_quantizers=True}" in Cleanup(fold_quantizers=True).pipeline().describe()
    assert make_pass("cleanup", {"fold_quantizers": "true"}).describe() == "cleanup{fold_quantizers=True}"
    # the constant itself is a valid pipeline string (the CLI runs it directly)
    assert parse_pipeline(CLEANUP_PIPELINE).describe() == CLEANUP_PIPELINE.replace(", ", ",")


def test_name_nodes_rejects_clashing_interface_names():
    nodes = [helper.make_node("Relu", ["x"], ["y"])]
    model = make_model(nodes, [("x", F, [2])], [("y", F, [2])])
    list(model.graph)[0].outputs[0].name = "x"
    with pytest.raises(BadInputError):
        run("name-nodes", model)


# -- the shared corpus ----------------------------------------------------------------------

CORPUS = shared_models()


def _feeds(model, path):
    initialized = set(model.graph.initializers)
    names = [v.name for v in model.graph.inputs if v.name not in initialized]
    npz = path.parent / "io.npz"
    if npz.is_file() and len(names) == 1:
        return {names[0]: np.load(npz)["input"]}
    return {k: np.abs(v) for k, v in random_inputs(model, seed=0).items()}


def _check(proto, full: bool) -> str | None:
    try:
        onnx.checker.check_model(proto, full_check=full)
    except Exception as exc:  # noqa: BLE001 - the message is the verdict
        return str(exc).splitlines()[0]
    return None


def _assert_close(expected: dict, got: dict, rel: float = 1e-6) -> None:
    assert set(got) == set(expected)
    for name, want in expected.items():
        have = got[name]
        assert have.dtype == want.dtype and have.shape == want.shape, name
        scale = float(np.max(np.abs(want))) if want.size else 0.0
        diff = float(np.max(np.abs(have.astype(np.float64) - want.astype(np.float64)))) if want.size else 0.0
        assert diff <= rel * scale, f"{name}: max abs diff {diff:.3g} vs output magnitude {scale:.3g}"


@pytest.mark.shared
@pytest.mark.parametrize("path", CORPUS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_cleanup_on_corpus(path):
    model = load(path)
    feeds = _feeds(model, path)
    expected = Executor(model).run(feeds)
    standard = only_standard_ops(model)
    original_check = _check(ir.to_proto(model), full=standard)
    original_ort = run_onnxruntime(model, feeds) if standard and original_check is None else None

    cleanup = Cleanup()
    cleanup(model)

    # (1) same outputs in the executor (initializers are no graph inputs any more)
    remaining = {v.name for v in model.graph.inputs}
    assert set(feeds) <= remaining
    _assert_close(expected, Executor(model).run(feeds))
    # (2) idempotent, and honest about it
    first = serialized(model)
    assert not cleanup(model).modified, [r.name for r in cleanup.last_records if r.modified]
    assert serialized(model) == first
    # (3) the checker accepts it whenever it accepted the original
    if original_check is None:
        assert _check(ir.to_proto(model), full=only_standard_ops(model)) is None
    # (4) onnxruntime still loads and runs standard-op models, with the same outputs
    if original_ort is not None:
        _assert_close(original_ort, run_onnxruntime(model, feeds), rel=1e-5)


QONNX_CORPUS = [p for p in CORPUS if p.name == "qonnx.onnx"]


@pytest.mark.shared
@pytest.mark.parametrize("path", QONNX_CORPUS, ids=lambda p: p.parent.name)
def test_cleanup_folding_weight_quantizers_on_corpus(path):
    model = load(path)
    feeds = _feeds(model, path)
    expected = Executor(model).run(feeds)
    quantizers = sum(n.domain != "" for n in model.graph)
    cleanup = Cleanup(fold_quantizers=True)
    cleanup(model)
    assert sum(n.domain != "" for n in model.graph) < quantizers  # weight quantizers folded
    _assert_close(expected, Executor(model).run(feeds))
    assert not cleanup(model).modified
