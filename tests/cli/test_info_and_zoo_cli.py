"""``qonnx info`` on QCDQ and QOp conversions, ``qonnx zoo validate --flows`` on a folder, as subprocesses.

Expected counts are read from the ONNX files with onnx/NumPy alone, never from qonnx_tools.info:
a weight is an initializer of rank >= 2 that a QONNX quantizer quantizes (in the original) or
that a DequantizeLinear / QLinearConv reads (in the conversions).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

MODELS = Path(__file__).resolve().parents[2] / "models"
QONNX_DOMAINS = {"onnx.brevitas", "qonnx.custom_op.general", "finn.custom_op.general", "finn"}
QONNX_QUANTIZERS = {"Quant", "IntQuant", "BipolarQuant", "Trunc", "FloatQuant", "MultiThreshold"}


def qonnx(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "qonnx_tools.cli.main", *args], capture_output=True, text=True,
                          timeout=300)


def qonnx_quantizers(path: Path) -> dict[str, int]:
    """Weight quantizers, their elements and activation quantizers of a QONNX file (onnx only)."""
    proto = onnx.load(str(path))
    inits = {t.name: t for t in proto.graph.initializer}
    quantizers = [n for n in proto.graph.node if n.domain in QONNX_DOMAINS and n.op_type in QONNX_QUANTIZERS]
    weights = [inits[n.input[0]] for n in quantizers if n.input[0] in inits and len(inits[n.input[0]].dims) >= 2]
    return {"weights": len(weights), "elements": sum(int(np.prod(t.dims)) for t in weights),
            "activations": sum(n.input[0] not in inits for n in quantizers)}


def integer_weights(path: Path) -> tuple[int, int]:
    """(count, elements) of integer initializers of rank >= 2 read by DequantizeLinear (input 0) or
    QLinearConv / QLinearMatMul (input 3) or ConvInteger / MatMulInteger (input 1) in a converted file (onnx only)."""
    proto = onnx.load(str(path))
    inits = {t.name: t for t in proto.graph.initializer}
    slots = {"DequantizeLinear": 0, "QLinearConv": 3, "QLinearMatMul": 3, "ConvInteger": 1, "MatMulInteger": 1}
    names = {n.input[slots[n.op_type]] for n in proto.graph.node if n.op_type in slots}
    weights = [inits[name] for name in names
               if name in inits and len(inits[name].dims) >= 2 and inits[name].data_type in (
                   onnx.TensorProto.INT8, onnx.TensorProto.UINT8)]
    return len(weights), sum(int(np.prod(t.dims)) for t in weights)


@pytest.fixture(scope="module")
def converted(tmp_path_factory) -> Path:
    """QCDQ of TFC_2W2A, QCDQ and QOp of intquant_mlp (what ``qonnx convert --to ...`` writes). TFC's QCDQ is
    the plain lowering (``--target openvino``): the default ort profile folds its BatchNormalizations into
    new int32 biases, and these tests count the original's quantizers."""
    from qonnx_tools.convert import convert
    from qonnx_tools.model_io import load, save

    out = tmp_path_factory.mktemp("converted")
    for source, target, name in (("tfc/TFC_2W2A", "qcdq", "tfc_qcdq"), ("generated/intquant_mlp", "qcdq", "mlp_qcdq"),
                                 ("generated/intquant_mlp", "qop", "mlp_qop")):
        model = load(MODELS / f"{source}.onnx")
        convert(model, to=target, **({"target": "openvino"} if name == "tfc_qcdq" else {}))
        save(model, out / f"{name}.onnx")
    return out


def test_info_on_our_qcdq_output_counts_the_original_weights(converted):
    """TFC_2W2A converted to QCDQ: 4 int8 weights behind DequantizeLinear, 4 Q->Clip->DQ activations
    (2-bit narrow), where `qonnx info` used to say "quantizers: 0, parameters: 776"."""
    original = qonnx_quantizers(MODELS / "tfc" / "TFC_2W2A.onnx")
    path = converted / "tfc_qcdq.onnx"
    assert integer_weights(path) == (original["weights"], original["elements"]) == (4, 59008)
    result = qonnx("info", str(path))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert f"quantizers: {original['weights'] + original['activations']} " \
           f"(weight {original['weights']}, activation {original['activations']})" in out
    assert f"forms: Q->Clip->DQ {original['activations']}, DQ(constant) {original['weights']}" in out
    params = re.search(r"^parameters: (\d+) \(quantized weights (\d+), quantized biases (\d+)", out, re.M)
    assert params is not None, out
    total, weights, biases = map(int, params.groups())
    # BatchNormalization parameters stay float (unquantized); TFC has no quantized bias
    assert (weights, biases) == (original["elements"], 0) and total > weights


@pytest.mark.parametrize("name", ["mlp_qcdq", "mlp_qop"])
def test_info_json_on_qcdq_and_qop_counts_the_original_weights(converted, name):
    original = qonnx_quantizers(MODELS / "generated" / "intquant_mlp.onnx")
    path = converted / f"{name}.onnx"
    assert integer_weights(path) == (original["weights"], original["elements"]) == (1, 160)
    result = qonnx("info", "--json", str(path))
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["quantizer_roles"]["weight"] == original["weights"]
    assert data["parameters_by_role"]["weight"] == original["elements"]
    weight_rows = [q for q in data["quantizers"] if q["role"] == "weight"]
    assert [(q["container"], q["bitwidth"], q["quantized_elements"]) for q in weight_rows] == [("int8", 8.0, 160)]
    if name == "mlp_qcdq":
        assert data["quantizer_forms"] == {"q-dq": 2, "dq-constant": 1}
        # the float bias stays float: counted, unquantized
        assert data["parameters_by_role"] == {"weight": 160, "bias": 0, "unquantized": 10}
    else:
        # the float bias is not exact in int32 at x_scale * w_scale: QOp keeps it in float after
        # MatMulInteger (the default; --requantize-bias would fold it into a QLinearConv int32 bias)
        assert weight_rows[0]["form"] == "integer" and weight_rows[0]["op"] == "MatMulInteger"
        assert data["parameters_by_role"] == {"weight": 160, "bias": 0, "unquantized": 10}
    assert data["num_parameters"] == 170 and data["weight_bits_quantized"] >= 160 * 8


def test_zoo_folder_runs_every_requested_flow_on_every_model(converted, tmp_path):
    """No manifest, --flows with streamline: each flow runs on each model; streamline cannot run on
    the QCDQ file (no QONNX quantizer) and says so instead of being dropped."""
    shutil.copy(MODELS / "generated" / "intquant_mlp.onnx", tmp_path / "a_qonnx.onnx")
    shutil.copy(converted / "mlp_qcdq.onnx", tmp_path / "b_qcdq.onnx")
    flows = ["exec", "cleanup", "convert:qop", "streamline"]
    result = qonnx("zoo", "validate", str(tmp_path), "--flows", ",".join(flows), "--json")
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    by_name = {m["name"]: {r["flow"]: r for r in m["results"]} for m in report["models"]}
    assert set(by_name) == {"a_qonnx", "b_qcdq"}
    for name, results in by_name.items():
        assert list(results) == ["check", *flows], name
    assert all(r["ok"] for r in by_name["a_qonnx"].values())
    qcdq = by_name["b_qcdq"]
    assert qcdq["convert:qop"]["ok"]  # the Q/DQ MatMul becomes a QLinearConv
    streamline = qcdq["streamline"]
    assert (streamline["ok"], streamline["status"]) == (False, "cannot-run")
    assert streamline["detail"].startswith("cannot run: streamline works on QONNX quantizers")
    assert not report["ok"]


def test_zoo_unknown_flow_is_one_error_line():
    result = qonnx("zoo", "validate", str(MODELS), "--flows", "exec,fold")
    assert result.returncode == 2 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "fold" in lines[0]
