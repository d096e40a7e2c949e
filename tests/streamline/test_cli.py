"""``qonnx streamline``: output file, --verify, --report, --max-bits, --force, exit codes."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper, numpy_helper

from qonnx_tools.cli.main import main
from qonnx_tools.model_io import load
from qonnx_tools.testing import quant_node

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
    (row,) = [line.split() for line in text.splitlines() if line.split()[:1] == ["y"]]
    assert row[1:3] == ["executor", "executor"] and row[-2] == "ok:", row  # the verify table's row for y
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


def _single_quantizer_file(tmp_path):
    """x -> Quant(scale 0.25, 4-bit unsigned) -> y, and an input holding the tie 0.625 (2.5 steps)."""
    node = quant_node("x", "s", "z", "b", "y", signed=0, name="q")
    inits = [("s", np.float32(0.25)), ("z", np.float32(0)), ("b", np.float32(4))]
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("x", 1, [1, 4])], [helper.make_tensor_value_info("y", 1, [1, 4])],
        initializer=[numpy_helper.from_array(np.asarray(a), n) for n, a in inits],
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid("qonnx.custom_op.general", 2)])
    proto.ir_version = 8
    path = tmp_path / "q.onnx"
    path.write_bytes(proto.SerializeToString())
    inputs = tmp_path / "x.npz"
    np.savez(inputs, x=np.array([[0.1, 0.61, 0.625, 3.0]], np.float32))
    return path, inputs


def _move_level3_threshold(monkeypatch, value):
    """Inject a fault after streamlining: the threshold of level 3 becomes ``value``."""
    from qonnx_tools._ir import ir
    from qonnx_tools.streamline import pipeline as sl_pipeline

    original = sl_pipeline.Streamline.call

    def faulty(self, model):
        result = original(self, model)
        mt = next(n for n in model.graph if n.op_type == "MultiThreshold")
        t = mt.inputs[1].const_value.numpy().copy()
        t[0, 2] = value
        mt.inputs[1].const_value = ir.tensor(t)
        return result

    monkeypatch.setattr(sl_pipeline.Streamline, "call", faulty)


def test_verify_accepts_a_near_tie_after_checking_each_layer(tmp_path, monkeypatch, capsys):
    src, inputs = _single_quantizer_file(tmp_path)
    _move_level3_threshold(monkeypatch, np.float32(0.625))  # one ulp: the tie 2.5 now rounds up
    out = tmp_path / "out.onnx"
    assert main(["streamline", str(src), "-o", str(out), "--verify", "--inputs", str(inputs)]) == 0
    text = capsys.readouterr().out
    (row,) = [line.split() for line in text.splitlines() if line.split()[:1] == ["y"]]
    assert row[3] == "0.25" and row[-1] == "MISMATCH", row  # max abs 0.25: one element one level off
    assert "1 of 4 levels differ, 1 of them near-ties" in text and "verify: accepted" in text
    assert out.exists()


def test_verify_refuses_a_moved_threshold(tmp_path, monkeypatch, capsys):
    src, inputs = _single_quantizer_file(tmp_path)
    _move_level3_threshold(monkeypatch, np.float32(0.6))  # 0.61 (2.44 steps, no tie) now reaches level 3
    out = tmp_path / "out.onnx"
    assert main(["streamline", str(src), "-o", str(out), "--verify", "--inputs", str(inputs)]) == 1
    captured = capsys.readouterr()
    assert "2 of 4 levels differ, 1 of them near-ties" in captured.out
    (line,) = captured.err.strip().splitlines()
    assert line.startswith(f"error: {src}: streamlining changed outputs") and "first real difference at 'q_mt'" in line
    assert not out.exists()
