"""``summarize`` checked against facts recorded independently of our code.

For the Brevitas corpus, ``meta.json`` (written by the exporting script) records
node counts and each quantizer's bit width; for the zoo files, the ONNX protobuf
itself (read with onnx) is the reference.
"""

from __future__ import annotations

import json
import re
from collections import Counter

import onnx
import pytest

from qonnx_tools.domains import QONNX, canonical_domain
from qonnx_tools.info import summarize
from qonnx_tools.model_io import load
from qonnx_tools.testing import brevitas_models, shared_models

CORPUS = [d for d in brevitas_models() if (d / "qonnx.onnx").is_file()]
ALL = shared_models()


def _key(op: str) -> str:
    return op if ":" not in op else f"{canonical_domain(op.split(':')[0])}:{op.split(':')[1]}"


@pytest.mark.shared
@pytest.mark.parametrize("folder", CORPUS, ids=lambda p: p.name)
def test_counts_match_exporter_record(folder):
    meta = json.loads((folder / "meta.json").read_text())["files"]["qonnx.onnx"]
    summary = summarize(load(folder / "qonnx.onnx"))
    assert summary.num_nodes == meta["num_nodes"]
    assert summary.op_counts == {_key(k): v for k, v in meta["nodes"].items()}
    n_quant = sum(v for k, v in meta["nodes"].items() if k.startswith("qonnx.custom_op.general:"))
    assert len(summary.quantizers) == n_quant
    assert [i.name for i in summary.inputs] == meta["graph_inputs"]
    assert [o.name for o in summary.outputs] == meta["graph_outputs"]


@pytest.mark.shared
@pytest.mark.parametrize("folder", CORPUS, ids=lambda p: p.name)
def test_quantizer_bits_match_brevitas_record(folder):
    """Each Brevitas quantizer whose bit width meta.json records appears with that width."""
    quantizers = json.loads((folder / "meta.json").read_text()).get("quantizers", [])
    summary = summarize(load(folder / "qonnx.onnx"))
    flat = {re.sub(r"[/.]", ".", q.node) + ".": q for q in summary.quantizers}
    checked = 0
    for record in quantizers:
        if not record.get("enabled") or "bit_width" not in record:
            continue
        module = "." + record["module"] + "."
        matches = [q for name, q in flat.items() if module in name]
        if len(matches) != 1:
            continue  # shared or fused quantizers: no one-to-one node
        q = matches[0]
        assert q.bitwidth == record["bit_width"], record["module"]
        if record.get("is_signed") is not None:
            assert q.signed == record["is_signed"], record["module"]
        if q.op in ("IntQuant", "Quant") and record.get("is_narrow_range") is not None:
            assert q.narrow == record["is_narrow_range"], record["module"]
        checked += 1
    if quantizers and not checked:
        pytest.skip("no one-to-one quantizer record in this model")


@pytest.mark.shared
@pytest.mark.parametrize("path", ALL, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_counts_match_protobuf(path):
    proto = onnx.load(str(path), load_external_data=False)
    summary = summarize(load(path))
    expected = Counter(
        n.op_type if n.domain in ("", "ai.onnx") else f"{canonical_domain(n.domain)}:{n.op_type}" for n in proto.graph.node
    )
    assert summary.op_counts == dict(expected)
    initialized = {t.name for t in proto.graph.initializer}
    assert [i.name for i in summary.inputs] == [v.name for v in proto.graph.input if v.name not in initialized]
    qonnx_nodes = sum(1 for n in proto.graph.node if canonical_domain(n.domain) == QONNX)
    assert len(summary.quantizers) == qonnx_nodes


def test_weight_memory_of_generated_model(tmp_path):
    """A 64x4 weight behind a 4-bit quantizer: 256 parameters, 8192 bits float, 1024 bits at INT4."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [
            helper.make_node("IntQuant", ["W", "s", "z", "b"], ["Wq"], domain=QONNX, narrow=1),
            helper.make_node("MatMul", ["x", "Wq"], ["y"]),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        [
            numpy_helper.from_array(np.ones((64, 4), np.float32), "W"),
            numpy_helper.from_array(np.ones((1, 4), np.float32), "s"),
            numpy_helper.from_array(np.array(0.0, np.float32), "z"),
            numpy_helper.from_array(np.array(4.0, np.float32), "b"),
        ],
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid(QONNX, 1)])
    onnx.save(proto, str(tmp_path / "m.onnx"))
    s = summarize(load(tmp_path / "m.onnx"))
    assert (s.num_parameters, s.weight_bits_float32, s.weight_bits_quantized) == (256, 256 * 32, 256 * 4)
    (q,) = s.quantizers
    assert (q.role, q.bitwidth, q.signed, q.narrow, q.granularity) == ("weight", 4.0, True, True, "per-channel(axis=1)")
