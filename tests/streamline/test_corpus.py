"""``streamline`` on the real-model corpus (../shared/models; skipped when absent).

For each model: the streamlined graph holds only integer-form nodes (MatMul/Conv with
integer-valued weights, MultiThreshold, MaxPool, data movement, integer residual Adds,
a trailing scalar Mul/Add), every non-integer leftover is explained by
``streamline_report``, and executor outputs on 100 seeded inputs (run in batches of the
model's declared batch size) agree with the original's: max abs diff <= 1e-5 of the
output range, identical argmax; every MultiThreshold is traced to its quantizer and
agrees with it on the original's own layer inputs (``layerwise``). Brevitas models are
also checked against their own PyTorch outputs (io.npz). One run of the flattened
pipeline with ``verify_each`` checks that every single pass preserves outputs.

MobileNet-v1 4b is checked layer by layer instead of end to end on random inputs: it
is chaotic at float32 precision (see ``test_mobilenet_every_layer_on_the_originals_inputs``).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from qonnx_tools.executor import Executor
from qonnx_tools.model_io import load
from qonnx_tools.passes import parse_pipeline
from qonnx_tools.passes.pipeline import FixpointNotReached
from qonnx_tools.streamline import Streamline, streamline_report
from qonnx_tools.streamline.frontend import frontend_pipeline_text
from qonnx_tools.streamline.layerwise import compare_layers
from qonnx_tools.streamline.pipeline import STREAMLINE_RULES
from qonnx_tools.testing import shared_dir

pytestmark = [pytest.mark.shared, pytest.mark.filterwarnings("ignore::RuntimeWarning")]

FORM = {"MultiThreshold", "MatMul", "Conv", "MaxPool", "Reshape", "Flatten", "Transpose", "Add", "Mul"}

# name: (path under models/, expected op counts after streamlining, expected report rows as (op, reason part))
CASES = {
    "TFC_1W1A": ("qonnx-model-zoo/tfc/TFC_1W1A.onnx", {"Reshape": 1, "MultiThreshold": 4, "MatMul": 4, "Mul": 1, "Add": 1}, []),
    "TFC_2W2A": ("qonnx-model-zoo/tfc/TFC_2W2A.onnx", {"Reshape": 1, "MultiThreshold": 4, "MatMul": 4, "Mul": 1, "Add": 1}, []),
    "KWS": ("qonnx-model-zoo/kws/kwsmlp_w3a3.onnx", {"MultiThreshold": 4, "Flatten": 1, "MatMul": 4, "Mul": 1}, []),
    "jet": (
        "qonnx-model-zoo/jet_tagging/qkeras_jettagging.onnx",
        {"MatMul": 4, "MultiThreshold": 3, "Mul": 1, "Add": 1, "Softmax": 1},
        [("MatMul", "float graph input"), ("Mul", "canonical Mul -> Add"), ("Add", "Softmax"), ("Softmax", "not part")],
    ),
    "bnn_tfc_1w1a": ("brevitas/bnn_tfc_1w1a/qonnx.onnx", {"Reshape": 1, "MultiThreshold": 4, "MatMul": 4, "Mul": 1, "Add": 1}, []),
    "bnn_tfc_2w2a": ("brevitas/bnn_tfc_2w2a/qonnx.onnx", {"Reshape": 1, "MultiThreshold": 4, "MatMul": 4, "Mul": 1, "Add": 1}, []),
    "bnn_sfc_1w2a": ("brevitas/bnn_sfc_1w2a/qonnx.onnx", {"Reshape": 1, "MultiThreshold": 4, "MatMul": 4, "Mul": 1, "Add": 1}, []),
    "bnn_cnv_2w2a": (
        "brevitas/bnn_cnv_2w2a/qonnx.onnx",
        {"MultiThreshold": 9, "Conv": 6, "MaxPool": 2, "Reshape": 1, "MatMul": 3, "Mul": 1, "Add": 1},
        [],
    ),
    "residual_shared_quant": ("brevitas/residual_shared_quant/qonnx.onnx", {"MultiThreshold": 8, "Conv": 4, "Add": 2, "Mul": 1}, []),
    "maxpool_quanttensor": (
        "brevitas/maxpool_quanttensor/qonnx.onnx",
        {"MultiThreshold": 3, "Conv": 2, "MaxPool": 2, "Reshape": 1, "MatMul": 1, "Mul": 1, "Add": 1},
        [("Add", "trailing per-channel Add")],
    ),
    "depthwise_grouped_conv2d": ("brevitas/depthwise_grouped_conv2d/qonnx.onnx", {"MultiThreshold": 4, "Conv": 3, "Mul": 1}, []),
    "trunc_avgpool_floor": (
        "brevitas/trunc_avgpool_floor/qonnx.onnx",
        {"MultiThreshold": 5, "Conv": 4, "Reshape": 1, "MatMul": 1, "Mul": 1, "Add": 1},
        [("Add", "trailing per-channel Add")],
    ),
}


def _path(rel: str) -> Path:
    root = shared_dir()
    if root is None:
        pytest.skip("../shared (real model corpus) is not present")
    path = root / "models" / rel
    if not path.exists():
        pytest.skip(f"{rel} not in the corpus")
    return path


def _batches(model, n=100, seed=0):
    (inp,) = [v for v in model.graph.inputs if v.name not in model.graph.initializers]
    shape = [d if isinstance(d, int) else 1 for d in inp.shape]
    batch = shape[0]
    rng = np.random.default_rng(seed)
    lo, hi = (-2.0, 2.0) if len(shape) == 2 else (0.0, 1.0)
    count = -(-n // batch) * batch
    x = rng.uniform(lo, hi, size=[count] + shape[1:]).astype(np.float32)
    return inp.name, [x[i : i + batch] for i in range(0, count, batch)], n


def _outputs(model, name, batches, n):
    ex = Executor(model)
    out = ex.output_names[0]
    return np.concatenate([ex.run({name: b})[out] for b in batches])[:n]


@pytest.mark.parametrize("case", sorted(CASES))
def test_streamline_corpus_model(case):
    rel, expected_ops, expected_rows = CASES[case]
    path = _path(rel)
    model = load(path)
    before_nodes = len(model.graph)
    name, batches, n = _batches(model)
    ref = _outputs(model, name, batches, n)
    with warnings.catch_warnings():
        warnings.simplefilter("error", FixpointNotReached)
        pass_ = Streamline()
        pass_(model)
    ops = {}
    for node in model.graph:
        ops[node.op_type] = ops.get(node.op_type, 0) + 1
    assert ops == expected_ops, ops
    assert len(model.graph) < before_nodes
    assert set(ops) <= FORM | {"Softmax"}
    assert not pass_.declined, pass_.declined
    # integer-valued weights everywhere
    from qonnx_tools.streamline.absorb import _linear_weight
    from qonnx_tools.streamline._graph import Editor

    editor = Editor(model)
    for node in model.graph:
        if node.op_type in ("MatMul", "Conv"):
            _, w = _linear_weight(node, editor)
            assert np.array_equal(w, np.round(w)), node.name
    rows = streamline_report(model)
    assert len(rows) == len(expected_rows), rows
    for (_, op, reason), (want_op, want_text) in zip(rows, expected_rows):
        assert op == want_op and want_text in reason, (op, reason)
    layers = compare_layers(load(path), model, {name: batches[0]})
    assert layers.ok and not layers.untraced, layers.summary()
    assert len(layers.layers) == ops.get("MultiThreshold", 0)
    got = _outputs(model, name, batches, n)
    scale = float(np.abs(ref).max())
    assert float(np.abs(got.astype(np.float64) - ref).max()) <= 1e-5 * scale
    flat_ref, flat_got = ref.reshape(n, -1), got.reshape(n, -1)
    assert np.array_equal(flat_ref.argmax(1), flat_got.argmax(1))
    if "brevitas" in rel:
        io = np.load(path.parent / "io.npz")
        out = Executor(model).run({name: io["input"].astype(np.float32)})
        expected = io["output"]
        (value,) = out.values()
        assert float(np.abs(value - expected).max()) <= 1e-5 * float(np.abs(expected).max())


#: Data movement: a float graph input moved by these stays float until its first quantizer.
MOVES = {"Reshape", "Flatten", "Transpose", "Squeeze", "Unsqueeze", "Identity", "Concat", "Split", "Slice",
         "MaxPool", "GlobalMaxPool", "Gather", "Tile", "Expand", "DepthToSpace", "SpaceToDepth"}


def _float_by_design(model) -> set[str]:
    """Nodes whose float outputs the report accepts: the trailing scalar Mul and Add in front of a graph
    output, and data movement of a float graph input."""
    from qonnx_tools.constants import constant_array

    names = set()
    for out in model.graph.outputs:
        value = out
        for op in ("Add", "Mul"):
            node = value.producer()
            if node is None or node.op_type != op:
                continue
            consts = [(i, constant_array(v)) for i, v in enumerate(node.inputs) if constant_array(v) is not None]
            if len(consts) != 1:
                break
            i, c = consts[0]
            if c.size == 1:
                names.add(node.name)
            value = node.inputs[1 - i]
    moved = {v.name for v in model.graph.inputs if v.const_value is None}
    for node in model.graph:  # sorted: topological
        if node.op_type in MOVES and node.inputs[0].name in moved:
            moved.update(v.name for v in node.outputs)
            names.add(node.name)
    return names


@pytest.mark.parametrize("case", sorted(CASES))
def test_report_agrees_with_the_annotations(case):
    """Every node ``streamline_report`` leaves out has integer datatypes on its float outputs (a MatMul/Conv
    also on its inputs and weight), but for the trailing scalar Mul/Add and data movement of the float
    input; so a node whose output annotation is FLOAT32 is listed."""
    from qonnx_tools.annotations import get_datatype

    model = load(_path(CASES[case][0]))
    Streamline()(model)
    listed = {name for name, _, _ in streamline_report(model)}
    exempt = _float_by_design(model)
    checked = 0
    for node in model.graph:
        if node.name in listed or node.name in exempt:
            continue
        values = [*node.outputs, *(node.inputs if node.op_type in ("MatMul", "Conv") else ())]
        for value in values:
            if value.dtype is None or value.dtype.is_floating_point():
                annotated = get_datatype(value)
                where = (node.op_type, node.name, value.name, str(annotated))
                assert annotated is not None and annotated.is_integer, where
                checked += 1
    assert checked > 0


MOBILENET = "brevitas/imagenet_mobilenet_v1_4b/qonnx.onnx"


def test_mobilenet_structure_and_reference_input():
    """Deep 4-bit MobileNet: integer except the float image input and the class bias.

    Against Brevitas' own output (io.npz): the same top-1 classes, and no further from
    it than the original graph run by the executor. Both may sit 0.4 off: on this batch
    an element of the first (float) layer lies within float32 noise of a rounding tie,
    and whether PyTorch, the original and the streamlined first Conv round it alike
    depends on each one's summation order (see the corpus README).
    """
    path = _path(MOBILENET)
    original, model = load(path), load(path)
    io = np.load(path.parent / "io.npz")
    x = io["input"].astype(np.float32)
    name = [v.name for v in model.graph.inputs if v.name not in model.graph.initializers][0]
    Streamline()(model)
    ops = {}
    for node in model.graph:
        ops[node.op_type] = ops.get(node.op_type, 0) + 1
    assert ops == {"Conv": 28, "MultiThreshold": 28, "Reshape": 1, "MatMul": 1, "Mul": 1, "Add": 1}
    rows = streamline_report(model)
    assert [op for _, op, _ in rows] == ["Conv", "Add"]  # float image input; per-class bias
    (got,) = Executor(model).run({name: x}).values()
    (ours,) = Executor(original).run({name: x}).values()
    expected = io["output"]
    assert np.array_equal(got.argmax(1), expected.argmax(1))
    tolerance = 1e-5 * float(np.abs(expected).max())
    assert float(np.abs(got - expected).max()) <= float(np.abs(ours - expected).max()) + tolerance
    assert compare_layers(original, model, {name: x}).ok


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mobilenet_every_layer_on_the_originals_inputs(seed):
    """Each of the 28 MultiThresholds, fed the original's own input to its layer, gives the
    original quantizer's levels except at near-ties (one level, pre-activation within 1e-4
    steps of a rounding boundary); the float tail after the last one matches too.

    Why not end to end: the original graph itself, run in float32 and in float64, picks a
    different top-1 class on 14 of 100 seeded random inputs (the logits of this randomly
    initialised network are within a few steps of each other), so end-to-end argmax
    agreement measures float32 noise, not streamlining. Measured here (seed 0, 2 images):
    1 of 10,030,336 levels differs, 1.8e-7 steps from a tie.
    """
    path = _path(MOBILENET)
    original, model = load(path), load(path)
    Streamline()(model)
    name, batches, _ = _batches(original, n=2, seed=seed)
    result = compare_layers(original, model, {name: batches[0]})
    assert result.ok and not result.untraced, result.summary()
    assert len(result.layers) == 28
    elements = sum(layer.elements for layer in result.layers)
    assert sum(layer.differing for layer in result.layers) <= 1e-5 * elements, result.summary()


def test_mobilenet_cli_verify_accepts_near_ties_only_after_the_layer_check(tmp_path, capsys):
    from qonnx_tools.cli.main import main

    out = tmp_path / "mobilenet_streamlined.onnx"
    assert main(["streamline", str(_path(MOBILENET)), "-o", str(out), "--verify"]) == 0
    text = capsys.readouterr().out
    if "MISMATCH" in text:  # on the machines measured so far: 0.068 off, from one near-tie
        assert "verify per layer: 28 MultiThreshold layers" in text and "verify: accepted" in text
    else:  # a BLAS whose summation order happens to round that element alike
        assert any(line.split()[:1] == ["output"] and "ok:" in line.split() for line in text.splitlines()), text
    assert out.exists()


@pytest.mark.parametrize("case", ["TFC_2W2A", "bnn_sfc_1w2a", "residual_shared_quant", "trunc_avgpool_floor"])
def test_every_pass_preserves_outputs(case):
    """The flattened streamline pipeline with verify_each: each pass is checked on its own."""
    model = load(_path(CASES[case][0]))
    text = (
        frontend_pipeline_text()
        + f", fixpoint{{steps=12}}({STREAMLINE_RULES}), infer-datatypes, round-thresholds, remove-dead"
    )
    pipeline = parse_pipeline(text, verify_each=True)
    pipeline(model)  # raises VerificationError naming the first pass that changes outputs
    assert any(r.modified for r in pipeline.records)
