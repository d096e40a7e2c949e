"""hls4ml_config: the bounds it sizes precisions from hold on what our executor computes, the ap_fixed
integer bits hold the bound (ap_fixed<W, I> spans [-2^(I-1), 2^(I-1))), and the CLI writes the config
beside the prepared model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from qonnx_tools.cli.main import main
from qonnx_tools.executor import Executor
from qonnx_tools.model_io import load
from qonnx_tools.prepare import prepare
from qonnx_tools.prepare.hls4ml_config import hls4ml_config, integer_bits, value_bounds
from qonnx_tools.testing import shared_dir

TFC = Path(__file__).resolve().parents[2] / "models" / "tfc" / "TFC_2W2A.onnx"


@pytest.mark.parametrize("bound", [0.0, 0.3, 0.999, 1.0, 1.5, 7.99, 8.0, 1000.0, 2.0 ** 20])
def test_integer_bits_hold_the_bound(bound):
    bits = integer_bits(bound)
    assert bound < 2.0 ** (bits - 1)                          # ap_fixed's largest value is below 2^(I-1)
    assert bits == 1 or bound >= 2.0 ** (bits - 2)            # and one bit fewer would not do


def _models():
    models = [TFC] if TFC.exists() else []
    root = shared_dir()
    if root is not None:
        models += [root / "models" / rel for rel in (
            "qonnx-model-zoo/kws/kwsmlp_w3a3.onnx", "brevitas/bnn_sfc_1w2a/qonnx.onnx",
            "brevitas/maxpool_quanttensor/qonnx.onnx", "brevitas/residual_shared_quant/qonnx.onnx")]
    return models


@pytest.mark.parametrize("path", _models(), ids=lambda p: p.parent.name if p.name == "qonnx.onnx" else p.stem)
def test_bounds_hold_on_what_the_executor_computes(path):
    model = load(path)
    prepare(model, "hls4ml")
    executor = Executor(model)
    (name,) = executor.input_names
    shape = [d if isinstance(d, int) else 1 for d in model.graph.inputs[0].shape]
    bounds = value_bounds(model, input_bound=1.0)
    assert len(bounds) > len(model.graph.initializers)  # node outputs are bounded, not only constants
    for seed in range(3):
        x = np.random.default_rng(seed).uniform(-1, 1, shape).astype(np.float32)
        values = executor.run({name: x}, keep_intermediates=True)
        for tensor, bound in bounds.items():
            if tensor in values and values[tensor].size:
                assert float(np.abs(values[tensor]).max()) <= bound * (1 + 1e-6) + 1e-6, (tensor, bound)


def test_config_sizes_float_layers_and_the_input():
    model = load(TFC)
    prepare(model, "hls4ml")
    config = hls4ml_config(model, fractional_bits=12, input_integer_bits=4)
    assert config["LayerName"][model.graph.inputs[0].name] == {"Precision": {"result": "fixed<16,4>"}}
    layers = {n.name: n.op_type for n in model.graph}
    configured = {layers[name] for name in config["LayerName"] if name in layers}
    assert configured and configured <= {"BatchNormalization", "Add", "Sub", "Mul", "Div"}
    for entry in config["LayerName"].values():
        width, integer = map(int, entry["Precision"]["result"][len("fixed<"):-1].split(","))
        assert width - integer == 12
    assert config["IOType"] == "io_parallel"


def test_cli_writes_the_config_beside_the_model(tmp_path, capsys):
    out = tmp_path / "tfc_hls4ml.onnx"
    assert main(["prepare", "--target", "hls4ml", str(TFC), "-o", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    written = json.loads((tmp_path / "tfc_hls4ml.hls4ml.json").read_text())
    assert written == report["hls4ml_config"]
    assert any("hls4ml.json" in note for note in report["notes"])
