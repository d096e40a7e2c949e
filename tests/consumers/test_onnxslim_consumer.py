"""Optional: onnxslim (fusions skipped) finds no node left to remove in our ``cleanup`` and
``convert --to qcdq`` outputs.

onnxslim must stay out of this project's environment, so it runs in a separate interpreter
(``$QONNX_TOOLS_ONNXSLIM_PYTHON`` or ``.venv-onnxslim/bin/python`` in the project root)
through tests/consumers/onnxslim_run.py; without one the tests are skipped. Set one up with:

    python -m venv .venv-onnxslim && .venv-onnxslim/bin/pip install onnxslim onnxruntime

(onnxslim folds constants with onnxruntime, which it does not declare.) Its fusion patterns
(Conv+BN, MatMul+Add -> Gemm, ...) change a quantized graph on purpose and are skipped; its
constant folding, elimination patterns, dead-node and common-subexpression elimination run.
onnxslim's folding puts every constant subgraph into one onnxruntime session: on graphs with
QONNX-domain nodes on constants (weight Quant) that fails and nothing is folded (the result
then carries a note); the qonnx cleanup_model test covers folding there.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from qonnx_tools.testing import shared_dir

_spec = importlib.util.spec_from_file_location("consumers_helper", Path(__file__).with_name("_consumer.py"))
consumer = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(consumer)

PYTHON = consumer.consumer_python("onnxslim", ["onnxslim", "onnxruntime"])

pytestmark = [
    pytest.mark.shared,
    pytest.mark.skipif(shared_dir() is None, reason="../shared (real model corpus) is not present"),
    pytest.mark.skipif(PYTHON is None, reason="no Python with onnxslim and onnxruntime "
                                              "(set QONNX_TOOLS_ONNXSLIM_PYTHON)"),
]


def _slim(built: dict) -> dict:
    paths = [p for p in built.values() if isinstance(p, Path)]
    by_file = consumer.run_consumer(PYTHON, "onnxslim_run.py", paths)
    return {rel: by_file[str(p)] if isinstance(p, Path) else None for rel, p in built.items()}


@pytest.fixture(scope="module")
def slim_cleanup(our_cleanup):
    return _slim(our_cleanup)


@pytest.fixture(scope="module")
def slim_qcdq(our_qcdq):
    return _slim(our_qcdq)


def _check(built: dict, results: dict, rel: str, what: str) -> None:
    assert isinstance(built[rel], Path), f"our {what} failed:\n{built[rel]}"
    result = results[rel]
    assert result["ok"], f"onnxslim failed on our {what} output: {result['error']}"
    assert result["after"]["nodes"] == result["before"]["nodes"] and not result["removed_ops"], (
        f"onnxslim still removes nodes from our {what} output:\n" + consumer.removal_message(result))
    assert result["before"]["static_inputs"] == 0, (
        f"initializers listed as graph inputs in our {what} output (onnxslim drops them):\n"
        + consumer.removal_message(result))


@pytest.mark.parametrize("rel", consumer.cleanup_corpus())
def test_onnxslim_removes_nothing_after_cleanup(our_cleanup, slim_cleanup, rel):
    _check(our_cleanup, slim_cleanup, rel, "cleanup")


@pytest.mark.parametrize("rel", consumer.qcdq_corpus())
def test_onnxslim_removes_nothing_after_convert_qcdq(our_qcdq, slim_qcdq, rel):
    _check(our_qcdq, slim_qcdq, rel, "convert --to qcdq")
