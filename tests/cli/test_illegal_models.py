"""Commands that transform a model refuse one that breaks QONNX's rules (issue 16, bullet 3).

One ``error:`` line per broken rule, naming file, node and rule; exit 2; no output file.
Nodes of a domain nobody here knows (and qonnx ops this package does not implement) pass
through with one warning naming them. The single-problem cases of every transforming
command are in tests/hostile; here: several problems at once, the pass-through warning,
and the library call behind it.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from qonnx_tools.errors import IllegalModelError
from qonnx_tools.model_io import UnknownOpWarning, load

QONNX = "qonnx.custom_op.general"


def qonnx(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "qonnx_tools.cli.main", *args], capture_output=True, text=True,
                          timeout=300)


def two_quants(path: Path, *, bits_a: float = 4.0, scale_b: float = 0.5, middle: onnx.NodeProto | None = None,
               extra_opsets=()) -> str:
    """x -> Quant 'qa' -> [middle] -> Quant 'qb' -> y, with the given bit width of qa and scale of qb."""
    mid = middle.output[0] if middle is not None else "a"
    nodes = [
        helper.make_node("Quant", ["x", "s", "z", "bits_a"], ["a"], name="qa", domain=QONNX, signed=1, narrow=0,
                         rounding_mode="ROUND"),
        *([middle] if middle is not None else []),
        helper.make_node("Quant", [mid, "scale_b", "z", "b8"], ["y"], name="qb", domain=QONNX, signed=1, narrow=0,
                         rounding_mode="ROUND"),
    ]
    inits = [numpy_helper.from_array(np.array(v, np.float32), n)
             for n, v in (("s", 0.25), ("z", 0.0), ("bits_a", bits_a), ("scale_b", scale_b), ("b8", 8.0))]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], inits)
    opsets = [helper.make_opsetid("", 13), helper.make_opsetid(QONNX, 1), *extra_opsets]
    onnx.save(helper.make_model(graph, opset_imports=opsets), str(path))
    return str(path)


def test_every_broken_rule_gets_its_own_line_and_nothing_is_written(tmp_path):
    model = two_quants(tmp_path / "m.onnx", bits_a=0.0, scale_b=-1.0)
    for command, extra in (("cleanup", []), ("convert", ["--to", "qcdq"]), ("streamline", [])):
        out = tmp_path / f"{command}.onnx"
        run = qonnx(command, model, "-o", str(out), *extra)
        assert run.returncode == 2, run.stderr
        assert "Traceback" not in run.stderr
        lines = [line for line in run.stderr.splitlines() if line.strip()]
        assert len(lines) == 2 and all(line.startswith(f"error: {model}: node '") for line in lines), run.stderr
        assert "'qa'" in lines[0] and "bitwidth must be an integer in 1..64, got 0" in lines[0]
        assert "'qb'" in lines[1] and "scale must be finite and > 0" in lines[1]
        assert not out.exists()


def test_nodes_of_unknown_domains_pass_through_cleanup_with_a_warning(tmp_path):
    middle = helper.make_node("Scramble", ["a"], ["m"], name="secret", domain="com.example.secret")
    model = two_quants(tmp_path / "m.onnx", middle=middle, extra_opsets=[helper.make_opsetid("com.example.secret", 1)])
    out = tmp_path / "out.onnx"
    run = qonnx("cleanup", model, "-o", str(out))
    assert run.returncode == 0, run.stderr
    warnings = [line for line in run.stderr.splitlines() if line.startswith("warning: ")]
    assert warnings == [f"warning: {model}: ops unknown here pass through unchanged: 1 × com.example.secret:Scramble"]
    kept = [n for n in onnx.load(str(out)).graph.node if n.domain == "com.example.secret"]
    assert [(n.op_type, list(n.input)) for n in kept] == [("Scramble", ["a"])]


def test_qonnx_ops_defined_elsewhere_pass_but_made_up_names_are_refused(tmp_path):
    known = helper.make_node("DebugMarker", ["a"], ["m"], name="marker", domain=QONNX, export_debug_name="a")
    model = two_quants(tmp_path / "known.onnx", middle=known)
    with pytest.warns(UnknownOpWarning, match="DebugMarker"):
        load(model, legal_qonnx=True)
    made_up = helper.make_node("QuantPlus", ["a"], ["m"], name="plus", domain=QONNX)
    model = two_quants(tmp_path / "made_up.onnx", middle=made_up)
    with pytest.raises(IllegalModelError) as info:
        load(model, legal_qonnx=True)
    assert info.value.problems == [
        f"node 'plus' ({QONNX}:QuantPlus): no operator QuantPlus exists in the QONNX domain {QONNX} (it has "
        "BipolarQuant, DebugMarker, FloatQuant, GenericPartition, Im2Col, IntQuant, MaxPoolNHWC, MultiThreshold, "
        "Quant, QuantAvgPool2d, Trunc, XnorPopcountMatMul)"
    ]
    load(model)  # reading (info, exec, check) is not refused at load: check reports it


def test_legal_models_load_without_a_word(recwarn):
    model = Path(__file__).resolve().parents[2] / "models" / "tfc" / "TFC_2W2A.onnx"
    load(model, legal_qonnx=True)
    assert not [w for w in recwarn if issubclass(w.category, UnknownOpWarning)]
