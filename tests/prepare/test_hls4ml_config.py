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
from qonnx_tools.prepare.hls4ml_config import FRACTIONAL_BITS, hls4ml_config, integer_bits, value_bounds
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


def _scaled_mlp(path: Path) -> Path:
    """x (1, 4) -> Quant_x (scale 0.1, 8-bit unsigned) -> MatMul with Quant_w weights (scale 0.03, 4-bit narrow)
    -> Add_b [1.5, -0.0003] -> Relu -> Quant_r (scale 0.25: a power of two) -> Mul_s [3, 1e-9] -> Quant_y
    (scale 0.3, 8-bit signed) as the graph output."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    domain = "qonnx.custom_op.general"
    consts = {"sx": 0.1, "sw": 0.03, "sr": 0.25, "sy": 0.3, "z": 0.0, "b8": 8.0, "b4": 4.0,
              "w": np.arange(-4, 4, dtype=np.float32).reshape(4, 2) * 0.03, "c": [[1.5, -0.0003]], "k": [3.0, 1e-9]}
    inits = [numpy_helper.from_array(np.asarray(v, np.float32), name) for name, v in consts.items()]

    def quant(name, x, scale, bits, signed, narrow=0):
        return helper.make_node("Quant", [x, scale, "z", bits], [name.lower()], name=name, domain=domain,
                                signed=signed, narrow=narrow, rounding_mode="ROUND")

    nodes = [quant("Quant_x", "x", "sx", "b8", 0), quant("Quant_w", "w", "sw", "b4", 1, narrow=1),
             helper.make_node("MatMul", ["quant_x", "quant_w"], ["h"], name="MatMul_h"),
             helper.make_node("Add", ["h", "c"], ["a"], name="Add_b"),
             helper.make_node("Relu", ["a"], ["r"], name="Relu_r"), quant("Quant_r", "r", "sr", "b4", 0),
             helper.make_node("Mul", ["quant_r", "k"], ["m"], name="Mul_s"), quant("Quant_y", "m", "sy", "b8", 1)]
    graph = helper.make_graph(nodes, "scaled_mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("quant_y", TensorProto.FLOAT, [1, 2])], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid(domain, 1)]),
              path)
    return path


def test_config_sizes_the_constants_of_hls4mls_scaling_layers(tmp_path):
    """Each layer whose configuration hls4ml types a scaling layer's ``scale``/``bias`` from gets
    ``fixed<I + F, I>``: I holds the largest |value|, F gives the smallest nonzero one (at least 2^-24 of the
    largest) 24 significant bits, F >= FRACTIONAL_BITS (20). By hand:

    * Quant_x: hls4ml's Quant_x_scale multiplies by 1/0.1 = 10 (I = 5; 10 >= 2^3, F = 23 - 3 = 20), bias 0;
      Quant_x_rescale (0.1) and Quant_w_rescale (0.03) move below the MatMul and merge into bn_Add_b;
    * Add_b: scale 0.1 x 0.03 = 0.003 (2^-9 <= 0.003 < 2^-8: F = 23 + 9 = 32, I = 1), bias [1.5, -0.0003]
      (I = 2 for 1.5; 2^-12 <= 0.0003: F = 23 + 12 = 35);
    * Quant_r: a power of two, a type in hls4ml: no scaling layer, no entry;
    * Mul_s: scale [3, 1e-9] (I = 3; 1e-9 is below 3 x 2^-24 = 1.8e-7, which counts, 2^-23 <= 1.8e-7:
      F = 23 + 23 = 46), bias 0;
    * Quant_y: Quant_y_scale 1/0.3 = 3.33 and Quant_y_rescale 0.3, which stays (the graph output): I = 3,
      2^-2 <= 0.3: F = 25.
    """
    assert FRACTIONAL_BITS == 20
    model = load(_scaled_mlp(tmp_path / "scaled_mlp.onnx"))
    layers = hls4ml_config(model)["LayerName"]
    precision = {name: {k: v for k, v in entry["Precision"].items() if k != "result"} for name, entry in layers.items()}
    assert precision == {
        "x": {},
        "Quant_x": {"scale": "fixed<25,5>", "bias": "fixed<21,1>"},
        "Add_b": {"scale": "fixed<33,1>", "bias": "fixed<37,2>"},
        "Mul_s": {"scale": "fixed<49,3>", "bias": "fixed<21,1>"},
        "Quant_y": {"scale": "fixed<28,3>", "bias": "fixed<21,1>"},
    }


def test_cli_writes_the_config_beside_the_model(tmp_path, capsys):
    out = tmp_path / "tfc_hls4ml.onnx"
    assert main(["prepare", "--target", "hls4ml", str(TFC), "-o", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    written = json.loads((tmp_path / "tfc_hls4ml.hls4ml.json").read_text())
    assert written == report["hls4ml_config"]
    assert any("hls4ml.json" in note for note in report["notes"])
