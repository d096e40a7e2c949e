"""Optional: FINN reads our datatypes. After our ``streamline``, qonnx 1.0's own ``InferShapes`` and
``InferDataTypes`` (``qonnx.transformation.infer_datatypes``, what FINN runs before converting
layers to hardware) give every MatMul/Conv integer datatypes on its inputs, weight and output, and
no annotation after qonnx's pass is narrower than the values our executor computes.

qonnx must stay out of this project's environment, so it runs in a separate interpreter
(``$QONNX_TOOLS_QONNX_PYTHON`` or ``.venv-qonnx/bin/python`` in the project root) through
tests/consumers/qonnx_datatypes.py; without one the tests are skipped. Set one up with:

    python -m venv .venv-qonnx && .venv-qonnx/bin/pip install qonnx==1.0.0 onnxruntime

qonnx's rule for MatMul/Conv/Add/Mul is "integer when every input is": an unannotated or
non-integer (SCALEDINT, FLOAT32) weight makes the output FLOAT32, which blocks FINN's hardware
conversion. qonnx replaces our exact accumulator types by INT32/UINT32 (wider, still integer).
Values are judged by qonnx itself (its ``DataType.allowed``) on the tensors our executor computes
on the corpus input (io.npz), or on four seeded uniform [-1, 1] inputs where there is none.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import onnx
import pytest

from qonnx_tools.testing import FINN_CORPUS, shared_dir

_spec = importlib.util.spec_from_file_location("consumers_helper", Path(__file__).with_name("_consumer.py"))
consumer = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(consumer)

PYTHON = consumer.consumer_python("qonnx", ["qonnx.transformation.infer_datatypes", "qonnx.core.modelwrapper"])

#: Streamlined models FINN must read (issue 18), under ../shared/models.
MODELS = list(FINN_CORPUS)

pytestmark = [
    pytest.mark.shared,
    pytest.mark.skipif(shared_dir() is None, reason="../shared (real model corpus) is not present"),
    pytest.mark.skipif(PYTHON is None, reason="no Python with qonnx 1.0 (set QONNX_TOOLS_QONNX_PYTHON)"),
]


def _stage_values(path: Path, source: Path) -> None:
    """``<stem>.values.npz`` beside our streamlined ``path``: every tensor our executor computes (one
    axis in front per run) on the corpus input of ``source``, or on seeded uniform [-1, 1] inputs."""
    from qonnx_tools.executor import Executor
    from qonnx_tools.model_io import load

    executor = Executor(load(path))
    (name,) = executor.input_names
    if (source.parent / "io.npz").is_file():
        feeds = [np.load(source.parent / "io.npz")["input"].astype(np.float32)]
    else:
        (value,) = [v for v in load(source).graph.inputs if v.name == name]
        shape = [d if isinstance(d, int) else 1 for d in value.shape]
        rng = np.random.default_rng(0)
        feeds = [rng.uniform(-1, 1, size=shape).astype(np.float32) for _ in range(4)]
    runs = [executor.run({name: x}, keep_intermediates=True) for x in feeds]
    np.savez(path.with_suffix(".values.npz"), **{key: np.stack([run[key] for run in runs]) for key in runs[0]})


@pytest.fixture(scope="module")
def qonnx_results(tmp_path_factory):
    folder = tmp_path_factory.mktemp("streamlined")

    def make(src: Path, dst: Path) -> Path:
        path = consumer.streamlined(src, dst)
        _stage_values(path, src)
        return path

    built = consumer.build(folder, MODELS, make)
    paths = [p for p in built.values() if isinstance(p, Path)]
    by_file = consumer.run_consumer(PYTHON, "qonnx_datatypes.py", paths)
    return {rel: (p, by_file[str(p)] if isinstance(p, Path) else None) for rel, p in built.items()}


def _written(path: Path) -> dict[str, str]:
    """The finn_datatype annotations as our file spells them."""
    return {
        entry.tensor_name: kv.value
        for entry in onnx.load(str(path), load_external_data=False).graph.quantization_annotation
        for kv in entry.quant_parameter_tensor_names
        if kv.key == "finn_datatype"
    }


@pytest.mark.parametrize("rel", MODELS)
def test_qonnx_infers_integer_datatypes_on_every_matmul_and_conv(qonnx_results, rel):
    path, result = qonnx_results[rel]
    assert isinstance(path, Path), f"our streamline failed:\n{path}"
    assert result["ok"], f"qonnx failed on our output: {result['error']}"
    assert not result["unparsed"], f"annotations qonnx 1.0 cannot read: {result['unparsed']}"
    # our names are qonnx's canonical ones (UINT1 is written BINARY)
    assert _written(path) == result["before"]
    assert result["nodes"], "no MatMul/Conv in the streamlined model"
    not_integer = [
        f"{node['op']} {node['name']!r}: {'weight' if d['initializer'] else 'tensor'} {d['name']!r} is {d['datatype']}"
        for node in result["nodes"]
        for d in node["inputs"] + node["outputs"]
        if not d["integer"]
    ]
    assert not not_integer, "qonnx InferDataTypes gives non-integer types:\n" + "\n".join(not_integer)
    assert all(any(d["initializer"] for d in node["inputs"]) for node in result["nodes"])


@pytest.mark.parametrize("rel", MODELS)
def test_no_annotation_after_qonnx_is_narrower_than_the_values(qonnx_results, rel):
    path, result = qonnx_results[rel]
    assert isinstance(path, Path), f"our streamline failed:\n{path}"
    assert result["ok"], f"qonnx failed on our output: {result['error']}"
    assert result["checked"] == len(result["after"]), "annotated tensors without values"
    assert not result["outside"], f"values outside their annotated type (judged by qonnx): {result['outside']}"
