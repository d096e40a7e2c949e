"""``qonnx streamline``: output file, --verify, --report, --max-bits, --force, exit codes."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper, numpy_helper

from qonnx_tools.cli.main import main
from qonnx_tools.model_io import load

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")


def _model_file(kit, tmp_path, act_bits=4):
    rng = np.random.default_rng(0)
    nodes = [
        kit.quant("x", "s_in", "z", "b8", "xq"),
        kit.quant("w", "s_w", "z", "b4", "wq", narrow=1),
        kit.node("MatMul", ["xq", "wq"], ["h"]),
        kit.node("Relu", ["h"], ["r"]),
        kit.quant("r", "s_a", "z", "ba", "a", signed=0),
        kit.quant("w2", "s_w", "z", "b4", "wq2", narrow=1),
        kit.node("MatMul", ["a", "wq2"], ["y"]),
    ]
    inits = [
        ("s_in", np.float32(0.02)), ("z", np.float32(0)), ("b8", np.float32(8)), ("b4", np.float32(4)),
        ("ba", np.float32(act_bits)), ("s_w", np.float32(0.1)), ("s_a", np.float32(0.3)),
        ("w", rng.normal(size=(6, 5)).astype(np.float32)), ("w2", rng.normal(size=(5, 3)).astype(np.float32)),
    ]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", kit.F, [2, 6])], [helper.make_tensor_value_info("y", kit.F, [2, 3])],
        initializer=[numpy_helper.from_array(np.asarray(a), n) for n, a in inits],
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid(kit.QONNX, 2)])
    proto.ir_version = 8
    path = tmp_path / "model.onnx"
    path.write_bytes(proto.SerializeToString())
    return path


def test_streamline_cli_writes_integer_model(kit, tmp_path, capsys):
    src = _model_file(kit, tmp_path)
    out = tmp_path / "out.onnx"
    rc = main(["streamline", str(src), "-o", str(out), "--verify", "--report"])
    text = capsys.readouterr().out
    assert rc == 0, text
    assert "verify y: max abs" in text and "(ok)" in text
    assert "non-integer nodes: none" in text
    model = load(out)
    ops = sorted(n.op_type for n in model.graph)
    assert ops == ["MatMul", "MatMul", "Mul", "MultiThreshold", "MultiThreshold"]


def test_existing_output_needs_force(kit, tmp_path, capsys):
    src = _model_file(kit, tmp_path)
    out = tmp_path / "out.onnx"
    out.write_bytes(b"old")
    assert main(["streamline", str(src), "-o", str(out)]) == 2
    assert out.read_bytes() == b"old"
    assert main(["streamline", str(src), "-o", str(out), "--force"]) == 0
    capsys.readouterr()


def test_max_bits_refusal_is_reported(kit, tmp_path, capsys):
    src = _model_file(kit, tmp_path, act_bits=4)
    out = tmp_path / "out.onnx"
    assert main(["streamline", str(src), "-o", str(out), "--max-bits", "2", "--report"]) == 0
    text = capsys.readouterr().out
    assert "not converted:" in text and "max_bits=2" in text
    assert "(Quant): quantizer not converted" in text


def test_verify_mismatch_exits_1(kit, tmp_path, monkeypatch, capsys):
    from qonnx_tools.streamline import pipeline as sl_pipeline

    original = sl_pipeline.Streamline.call

    def broken(self, model):
        result = original(self, model)
        mt = next(n for n in model.graph if n.op_type == "MultiThreshold")
        from qonnx_tools._ir import ir

        mt.attributes["out_bias"] = ir.AttrFloat32("out_bias", 5.0)
        return result

    monkeypatch.setattr(sl_pipeline.Streamline, "call", broken)
    src = _model_file(kit, tmp_path)
    out = tmp_path / "out.onnx"
    assert main(["streamline", str(src), "-o", str(out), "--verify"]) == 1
    assert not out.exists()
    assert "changed outputs" in capsys.readouterr().err
