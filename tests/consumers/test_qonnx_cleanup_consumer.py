"""Optional: after our ``cleanup``, qonnx 1.0's own ``cleanup_model`` finds no node left to remove.

qonnx must stay out of this project's environment, so its cleanup runs in a separate
interpreter (``$QONNX_TOOLS_QONNX_PYTHON`` or ``.venv-qonnx/bin/python`` in the project
root) through tests/consumers/qonnx_cleanup.py; without one the tests are skipped. Set one
up with:

    python -m venv .venv-qonnx && .venv-qonnx/bin/pip install qonnx==1.0.0 onnxruntime

``cleanup_model`` (default arguments) runs InferShapes, GiveUniqueParameterTensors,
FoldConstants (keeping Quant, BipolarQuant, QuantizeLinear, DequantizeLinear),
FoldTransposeIntoQuantInit, RemoveUnusedTensors, RemoveStaticGraphInputs and renaming.
Every node it removes from our output is one our cleanup could have removed, except
quantizers qonnx does not protect from folding (``UNPROTECTED_QUANTIZERS``): on a constant
weight it replaces FloatQuant/IntQuant/Trunc by plain floats, losing the quantization that
we keep on purpose (shared/reference/consumers.md).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from qonnx_tools.testing import shared_dir

_spec = importlib.util.spec_from_file_location("consumers_helper", Path(__file__).with_name("_consumer.py"))
consumer = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(consumer)

#: Quantizers qonnx 1.0's cleanup_model folds into floats when their inputs are constant.
UNPROTECTED_QUANTIZERS = frozenset({"FloatQuant", "IntQuant", "Trunc"})

PYTHON = consumer.consumer_python("qonnx", ["qonnx.util.cleanup", "qonnx.core.modelwrapper", "onnxruntime"])
MODELS = consumer.cleanup_corpus()

pytestmark = [
    pytest.mark.shared,
    pytest.mark.skipif(shared_dir() is None, reason="../shared (real model corpus) is not present"),
    pytest.mark.skipif(PYTHON is None, reason="no Python with qonnx 1.0 (set QONNX_TOOLS_QONNX_PYTHON)"),
]


@pytest.fixture(scope="module")
def qonnx_results(our_cleanup):
    paths = [p for p in our_cleanup.values() if isinstance(p, Path)]
    by_file = consumer.run_consumer(PYTHON, "qonnx_cleanup.py", paths)
    return {rel: by_file[str(p)] if isinstance(p, Path) else None for rel, p in our_cleanup.items()}


@pytest.mark.parametrize("rel", MODELS)
def test_qonnx_cleanup_removes_nothing_after_ours(our_cleanup, qonnx_results, rel):
    assert isinstance(our_cleanup[rel], Path), f"our cleanup failed:\n{our_cleanup[rel]}"
    result = qonnx_results[rel]
    assert result["ok"], f"qonnx cleanup_model failed on our output: {result['error']}"
    folded_quantizers = sum(n for op, n in result["removed_ops"].items() if op in UNPROTECTED_QUANTIZERS)
    assert result["after"]["nodes"] == result["before"]["nodes"] - folded_quantizers, (
        "qonnx cleanup_model still removes nodes:\n" + consumer.removal_message(result))
    assert not result["added_ops"], "qonnx cleanup_model adds nodes:\n" + consumer.removal_message(result)
    assert result["after"]["static_inputs"] == result["before"]["static_inputs"] == 0, (
        "initializers still listed as graph inputs:\n" + consumer.removal_message(result))
