"""convert --to qcdq --target tensorrt: TensorRT's explicit-quantization form, exact, or refused.

The form is checked on the written graph (symmetric int8 Q/DQ with zero points 0, no Clip,
pre-quantized int8 weights -> DQ); the numbers against the executor on the QONNX original with
onnxruntime (optimisations off) running the result. TensorRT itself needs a GPU this machine
does not have.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from qonnx_tools._ir import ir
from qonnx_tools.constants import constant_array
from qonnx_tools.convert import convert
from qonnx_tools.model_io import load
from qonnx_tools.refusals import Refused
from qonnx_tools.runtime import random_inputs
from qonnx_tools.testing import brevitas_models
from qonnx_tools.verify import reference_run, verify_against

QONNX = "qonnx.custom_op.general"
FOLDERS = [d for d in brevitas_models() if (d / "qonnx.onnx").is_file()]
#: what the profile must accept (measured 2026-12-07: 8-bit signed symmetric activations; weights of
#: any width up to 8 whose integers stay within [-127, 127])
ACCEPTED = {"seed_qop_conv", "qop_cnn_s8", "seed_qgemm"}
KNOWN_REASONS = ("float quantizer", "activation of", "unsigned activation", "narrow-range activation", "non-zero zero-point",
                 "weight integers in", "weight of", "rounding mode", "not constant")


def _assert_tensorrt_form(model: ir.Model) -> None:
    nodes = list(model.graph)
    assert not [n for n in nodes if n.op_type == "Clip"]
    for n in nodes:
        if n.op_type in ("QuantizeLinear", "DequantizeLinear"):
            zp = constant_array(n.inputs[2])
            data = constant_array(n.inputs[0])
            if n.op_type == "DequantizeLinear" and data is not None and data.dtype == np.int32:
                continue  # an int32 bias, which TensorRT folds into its layer
            assert zp is not None and not np.any(zp.astype(np.float32)), n.name
            assert zp.dtype == np.int8 or str(zp.dtype) == "float8_e4m3fn", (n.name, zp.dtype)
    for n in nodes:
        if n.op_type in ("Conv", "Gemm", "MatMul"):
            dq = n.inputs[1].producer()
            if dq is not None and dq.op_type == "DequantizeLinear":  # float weight -> Q, or pre-quantized int8
                q = dq.inputs[0].producer()
                stored = constant_array(dq.inputs[0])
                assert (q is not None and q.op_type == "QuantizeLinear" and constant_array(q.inputs[0]).dtype == np.float32
                        ) or (stored is not None and stored.dtype == np.int8), n.name


@pytest.mark.shared
@pytest.mark.parametrize("folder", FOLDERS, ids=lambda d: d.name)
def test_corpus_is_converted_exactly_or_refused_with_a_reason(folder):
    model = load(folder / "qonnx.onnx")
    feeds = random_inputs(model, seed=2)
    reference = reference_run(model, feeds)
    try:
        result = convert(model, to="qcdq", target="tensorrt")
    except Refused as refused:
        assert folder.name not in ACCEPTED, str(refused)[:300]
        assert refused.refusals and all(r.reason.startswith(KNOWN_REASONS) for r in refused.refusals)
        return
    _assert_tensorrt_form(model)
    assert any(n.startswith("TensorRT int8 layers: ") for n in result.notes)
    report = verify_against(reference, model, backend="onnxruntime")
    assert report.ok and all(o.verdict in ("exact", "tolerance") for o in report.outputs), report.outputs


@pytest.mark.shared
def test_the_expected_models_are_accepted():
    names = {d.name for d in FOLDERS}
    if not ACCEPTED <= names:
        pytest.skip("corpus models missing")
    for name in sorted(ACCEPTED):  # every layer reads int8 data and int8 weights
        path = next(d for d in FOLDERS if d.name == name) / "qonnx.onnx"
        layers = sum(n.op_type in ("Conv", "MatMul", "Gemm") for n in onnx.load(str(path)).graph.node)
        result = convert(load(path), to="qcdq", target="tensorrt")
        assert f"TensorRT int8 layers: {layers} of {layers}" in result.notes, result.notes


def _dense(weight_codes: np.ndarray, *, act_signed: int = 1, act_bits: float = 8.0, w_narrow: int = 0) -> onnx.ModelProto:
    scale = np.float32(0.05)
    nodes = [
        helper.make_node("Quant", ["x", "s", "z", "ab"], ["xq"], name="act", domain=QONNX, signed=act_signed,
                         narrow=0, rounding_mode="ROUND"),
        helper.make_node("Quant", ["w", "ws", "z", "wb"], ["wq"], name="weight", domain=QONNX, signed=1,
                         narrow=w_narrow, rounding_mode="ROUND"),
        helper.make_node("MatMul", ["xq", "wq"], ["y"], name="mm"),
    ]
    inits = [numpy_helper.from_array(a, n) for n, a in (
        ("s", scale), ("z", np.float32(0)), ("ab", np.float32(act_bits)), ("wb", np.float32(8)),
        ("ws", np.float32(0.01)), ("w", (weight_codes * np.float32(0.01)).astype(np.float32)))]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid(QONNX, 1)])


def test_weights_reaching_minus_128_and_unsigned_activations_are_refused():
    codes = np.arange(-6, 6, dtype=np.float32).reshape(4, 3) * 20  # -120 .. 100
    convert(ir.serde.deserialize_model(_dense(codes)), to="qcdq", target="tensorrt")
    wide = codes.copy()
    wide[0, 0] = -128
    with pytest.raises(Refused) as info:
        convert(ir.serde.deserialize_model(_dense(wide)), to="qcdq", target="tensorrt")
    assert [(r.node, r.reason) for r in info.value.refusals] == [
        ("weight", "weight integers in [-128, 100]: TensorRT weights are narrow [-127, 127]")]
    with pytest.raises(Refused) as info:
        convert(ir.serde.deserialize_model(_dense(codes, act_signed=0)), to="qcdq", target="tensorrt")
    assert [(r.node, r.reason) for r in info.value.refusals] == [
        ("act", "unsigned activation (TensorRT quantizes to int8 only)")]


def test_cli_refusal_is_grouped_and_writes_nothing(tmp_path):
    path = tmp_path / "m.onnx"
    onnx.save(_dense(np.ones((4, 3), np.float32), act_bits=4.0), str(path))
    out = tmp_path / "out.onnx"
    run = subprocess.run([sys.executable, "-m", "qonnx_tools.cli.main", "convert", "--to", "qcdq", "--target",
                          "tensorrt", str(path), "-o", str(out)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 1 and not out.exists()
    assert "1 × Quant: activation of 4 bits (TensorRT takes no Clip between Q and DQ) (act)" in run.stdout
    (line,) = run.stderr.strip().splitlines()
    assert line.startswith("error: ") and "nothing written" in line
