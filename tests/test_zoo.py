"""``qonnx zoo validate``: the shipped zoo passes, perturbed references fail, the shared corpus reports."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from qonnx_tools import zoo
from qonnx_tools.cli.main import main
from qonnx_tools.testing import shared_dir

MODELS = Path(__file__).resolve().parents[1] / "models"


def test_validate_shipped_models_passes(capsys):
    assert main(["zoo", "validate", str(MODELS), "--jobs", "2"]) == 0
    out = capsys.readouterr().out
    assert "generated/intquant_rounding_modes" in out and "tfc/TFC_2W2A" in out
    assert "0 failed" in out and "✗" not in out


def _copy_zoo(tmp_path: Path) -> Path:
    dest = tmp_path / "models"
    shutil.copytree(MODELS, dest, ignore=shutil.ignore_patterns("__pycache__"))
    return dest


def test_perturbed_reference_fails_naming_model_and_flow(tmp_path, capsys):
    dest = _copy_zoo(tmp_path)
    npz = dest / "generated" / "trunc_v2.npz"
    with np.load(npz) as data:
        arrays = {k: data[k] for k in data.files}
    arrays["output:y0"] = arrays["output:y0"] + 10.0 * arrays["output:y0"].std() + 1.0
    np.savez(npz, **arrays)
    code = main(["zoo", "validate", str(dest), "--flows", "exec"])
    out = capsys.readouterr().out
    assert code == 1
    failures = [line for line in out.splitlines() if line.startswith("[")]
    assert len(failures) == 1 and "generated/trunc_v2 exec" in failures[0] and "y0" in failures[0]
    # the verify table of the failed comparison follows the failure line; every one of the
    # 2 x 32 elements of y0 moved by at least 1.0
    lines = out.splitlines()
    k = lines.index(failures[0])
    assert lines[k + 1].startswith("    verify: A reference vs B executor")
    (row,) = [line for line in lines[k + 2:] if line.split()[:1] == ["y0"]]
    assert "64 (100.00 %)" in row and row.rstrip().endswith("MISMATCH")


def test_one_step_off_on_a_quantized_output_fails_by_default(tmp_path, capsys):
    """Same rule as ``qonnx verify``: a quantization step is never accepted unless max_steps allows it."""
    dest = _copy_zoo(tmp_path)
    npz = dest / "generated" / "intquant_rounding_modes.npz"
    with np.load(npz) as data:
        arrays = {k: data[k] for k in data.files}
    arrays["output:y_floor"][0, 0] += np.float32(0.25)  # the IntQuant scale: one step, on 1 of 2 x 64 elements
    np.savez(npz, **arrays)
    code = main(["zoo", "validate", str(dest), "--flows", "exec", "--json"])
    assert code == 1
    report = json.loads(capsys.readouterr().out)
    (model,) = [m for m in report["models"] if not m["ok"]]
    assert model["name"] == "generated/intquant_rounding_modes"
    (flow,) = [r for r in model["results"] if not r["ok"]]
    assert flow["flow"] == "exec"
    assert "output 'y_floor': max abs 0.25" in flow["detail"] and "max steps 1," in flow["detail"]
    assert "1 (0.78 %) elements differing" in flow["detail"]  # 1 / 128 = 0.78125 %
    verify = flow["verify"]
    assert (verify["backend_a"], verify["backend_b"]) == ("reference", "executor")
    bad = [o for o in verify["outputs"] if not o["ok"]]
    assert [(o["name"], o["max_steps"], o["differing"], o["elements"]) for o in bad] == [("y_floor", 1.0, 1, 128)]


def test_checksum_mismatch_fails(tmp_path, capsys):
    dest = _copy_zoo(tmp_path)
    text = (dest / "manifest.toml").read_text()
    (dest / "manifest.toml").write_text(text.replace('sha256 = "db8de1', 'sha256 = "00000', 1))
    assert main(["zoo", "validate", str(dest), "--flows", "exec", "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    bad = [m for m in report["models"] if not m["ok"]]
    assert [m["name"] for m in bad] == ["tfc/TFC_2W2A"] and "sha256" in bad[0]["results"][0]["detail"]


def test_folder_without_manifest_uses_defaults(tmp_path, capsys):
    shutil.copy(MODELS / "generated" / "intquant_mlp.onnx", tmp_path / "a.onnx")
    entries = zoo.discover(tmp_path)
    assert [(e.name, e.flows) for e in entries] == [("a", ["exec", "cleanup", "convert:qcdq"])]
    assert main(["zoo", "validate", str(tmp_path)]) == 0
    assert "a " in capsys.readouterr().out


def test_requested_flows_replace_the_folder_defaults(tmp_path):
    """--flows runs every named flow on every model: the folder default (exec, cleanup, convert:qcdq)
    does not filter them, and a flow that cannot run fails with its reason."""
    shutil.copy(MODELS / "generated" / "intquant_mlp.onnx", tmp_path / "a.onnx")
    onnx.save(_float_model(), str(tmp_path / "f.onnx"))
    flows = ["exec", "convert:qop", "convert:qonnx", "streamline"]
    (a, f) = zoo.validate(zoo.discover(tmp_path), flows=flows)
    assert [r.flow for r in a.results] == ["check", *flows] and a.ok
    assert [r.flow for r in f.results] == ["check", *flows]
    assert [r.status for r in f.results] == ["passed", "passed", "cannot-run", "cannot-run", "cannot-run"]
    assert f.results[2].detail == ("cannot run: nothing converts to qop: the model has no quantizer in any form "
                                   "(QONNX op, Q/DQ, QLinear/Integer op)")
    table = zoo.format_table([a, f])
    assert "[1] f convert:qop: cannot run: nothing converts to qop" in table
    assert "[3] f streamline: cannot run: streamline works on QONNX quantizers" in table


def test_requested_flows_replace_the_manifest_list(tmp_path, capsys):
    """A manifest that claims only exec: --flows exec,convert:qop runs convert:qop too (TFC_2W2A's
    MatMuls have no output quantizer: they become MatMulInteger with a float epilogue, exact)."""
    shutil.copy(MODELS / "tfc" / "TFC_2W2A.onnx", tmp_path / "tfc.onnx")
    (tmp_path / "manifest.toml").write_text('[[model]]\nfile = "tfc.onnx"\nflows = ["exec"]\n')
    assert main(["zoo", "validate", str(tmp_path), "--flows", "exec,convert:qop", "--json"]) == 0
    (model,) = json.loads(capsys.readouterr().out)["models"]
    assert [(r["flow"], r["status"]) for r in model["results"]] == [
        ("check", "passed"), ("exec", "passed"), ("convert:qop", "passed")]
    assert model["results"][2]["detail"] == "exact (onnxruntime)"


def test_qcdq_model_is_already_qcdq_but_cannot_become_qop_without_a_fusable_op(tmp_path):
    """A QCDQ model of quantizers alone: convert:qcdq passes (already QCDQ); convert:qop cannot run
    (no QONNX quantizer to lower, no QLinear/Integer op formed)."""
    graph = helper.make_graph(
        [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"]),
         helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"])],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        [numpy_helper.from_array(np.float32(0.1), "s"), numpy_helper.from_array(np.int8(0), "z")],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(tmp_path / "q.onnx"))
    (m,) = zoo.validate(zoo.discover(tmp_path), flows=["convert:qcdq", "convert:qop"])
    qcdq, qop = m.results[1:]
    assert qcdq.ok and qcdq.detail.startswith("already qcdq, unchanged; ")
    assert qop.status == "cannot-run"
    assert "the result is not qop (needs a QLinear or Integer operator; it has Q->DQ 1)" in qop.detail


def _float_model() -> onnx.ModelProto:
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def test_bad_arguments(tmp_path):
    assert main(["zoo", "validate", str(tmp_path / "missing")]) == 2
    assert main(["zoo", "validate", str(MODELS), "--flows", "exec,nope"]) == 2


@pytest.mark.shared
def test_validate_shared_corpus(capsys):
    root = shared_dir()
    if root is None:
        pytest.skip("shared corpus not available")
    code = main(["zoo", "validate", str(root / "models"), "--flows", "exec,cleanup,convert:qcdq", "--jobs", "4", "--json"])
    report = json.loads(capsys.readouterr().out)
    names = {m["name"] for m in report["models"]}
    assert "brevitas/seed_qgemm/qonnx" in names and "qonnx-model-zoo/kws/kwsmlp_w3a3" in names
    for model in report["models"]:
        assert model["results"][0]["flow"] == "check"
    assert code in (0, 1)
    assert code == (0 if all(m["ok"] for m in report["models"]) else 1)
