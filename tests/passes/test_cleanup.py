"""cleanup: the tidy-up pipeline on a handmade messy model, its text and options, and on the shared corpus.

The passes it runs are tested in their own modules (test_<pass>.py); here only that they are registered.
Numerics come from an independent source: onnxruntime on the unmodified model, NumPy formulas, or the
executor run on the model *before* the pass.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from qonnx_tools._ir import ir
from qonnx_tools.executor import Executor
from qonnx_tools.model_io import load
from qonnx_tools.passes import PassRecord, make_pass, parse_pipeline, registered_passes
from qonnx_tools.passes.cleanup import CLEANUP_PIPELINE, Cleanup, cleanup_pipeline_text
from qonnx_tools.runtime import only_standard_ops, random_inputs, run_onnxruntime
from qonnx_tools.testing import make_model, op_types, output_names, serialized, shared_models

F = TensorProto.FLOAT
CLEANUP_PASSES = [
    "remove-identity", "remove-noop-arith", "remove-dead", "dedupe-initializers", "remove-static-inputs",
    "pad-attrs-to-inputs", "sort", "name-nodes", "cleanup", "fold-constants",
]


@pytest.mark.parametrize("name", CLEANUP_PASSES)
def test_registered_with_summary(name):
    cls = registered_passes()[name]
    assert cls.name == name and cls.summary


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
    assert op_types(model) == ["MatMul", "Add", "Add", "Relu"]
    assert [v.name for v in model.graph.inputs] == ["x"] and output_names(model) == ["y"]
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
