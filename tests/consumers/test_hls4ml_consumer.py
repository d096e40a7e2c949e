"""Optional: hls4ml's own QONNX front end accepts ``prepare --target hls4ml`` output.

hls4ml (and the qonnx package it reads models with) must stay out of this
project's environment, so the test runs them in a separate interpreter, found as
``$QONNX_TOOLS_HLS4ML_PYTHON`` or ``.venv-hls4ml/bin/python`` in the project root;
without one the test is skipped. Set one up with (README, "hls4ml check"):

    python -m venv .venv-hls4ml && .venv-hls4ml/bin/pip install 'hls4ml[onnx]==1.3.0' qonnx==1.0.0

Only the conversion to an hls4ml model is run (no C++ compilation, no synthesis).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from qonnx_tools.model_io import load, save
from qonnx_tools.prepare import prepare
from qonnx_tools.testing import shared_dir

_spec = importlib.util.spec_from_file_location("consumers_helper", Path(__file__).with_name("_consumer.py"))
consumer = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(consumer)

PYTHON = consumer.consumer_python("hls4ml", ["hls4ml", "qonnx"])
SHARED = shared_dir()

#: model -> expected outcome in hls4ml 1.3 (a reason when hls4ml itself cannot convert it).
MODELS = {
    "qonnx-model-zoo/jet_tagging/qkeras_jettagging.onnx": None,
    "qonnx-model-zoo/tfc/TFC_2W2A.onnx": None,
    "qonnx-model-zoo/tfc/TFC_1W1A.onnx": None,
    "brevitas/bnn_sfc_1w2a/qonnx.onnx": None,
    "brevitas/bnn_cnv_2w2a/qonnx.onnx": None,
    "brevitas/residual_shared_quant/qonnx.onnx": None,
    # hls4ml 1.3 stops with "IndexError: list index out of range" on a weight Constant layer here;
    # qonnx's own preprocessing (cleanup, ConvertToChannelsLastAndClean, GemmToMatMul) gives the same error.
    "qonnx-model-zoo/kws/kwsmlp_w3a3.onnx": "IndexError",
    "brevitas/maxpool_quanttensor/qonnx.onnx": "IndexError",
}

pytestmark = [
    pytest.mark.shared,
    pytest.mark.skipif(PYTHON is None, reason="no Python with hls4ml and qonnx (set QONNX_TOOLS_HLS4ML_PYTHON)"),
]


@pytest.fixture(scope="module")
def hls4ml_results(tmp_path_factory):
    if SHARED is None:
        pytest.skip("../shared not available")
    folder = tmp_path_factory.mktemp("hls4ml")
    paths = {}
    for rel in MODELS:
        model = load(SHARED / "models" / rel)
        result = prepare(model, "hls4ml")
        assert result.ready, (rel, [str(v) for v in result.violations])
        paths[rel] = save(model, folder / (rel.replace("/", "_")))
    by_file = consumer.run_consumer(PYTHON, "hls4ml_convert.py", list(paths.values()))
    return {rel: by_file[str(path)] for rel, path in paths.items()}


@pytest.mark.parametrize("rel", sorted(MODELS))
def test_hls4ml_converts_prepared_model(hls4ml_results, rel):
    result = hls4ml_results[rel]
    expected_error = MODELS[rel]
    if expected_error is None:
        assert result["ok"], result.get("error")
        assert result["layers"][0] == "Input" and len(result["layers"]) > 2
    else:
        # a known hls4ml limitation: fail loudly if it changes (then move the model to the list above)
        assert not result["ok"] and result["error"].startswith(expected_error), result
