"""Optional: FINN's own hardware-layer inference maps every node of our ``prepare --target finn`` output.

FINN (finn-plus, with the qonnx it pins) must stay out of this project's environment, so it runs in a
separate interpreter, found as ``$QONNX_TOOLS_FINN_PYTHON`` or ``.venv-finn/bin/python`` in the project
root; without one the tests are skipped. Set one up with:

    python -m venv .venv-finn && .venv-finn/bin/pip install finn-plus==1.6.1 psutil

(finn-plus 1.6.1 imports psutil in its builder without declaring it; it pins brevitas 0.13.0, whose
``setuptools<70`` excludes torch >= 2.13 (``setuptools>=77.0.3``), so pip installs torch 2.12.1. Nothing
here imports torch, and no synthesis, code generation, simulation or vendor tool runs.)

For each model: ``prepare(model, "finn")`` (cleanup + streamline), saved; then, in the FINN interpreter,
tests/consumers/finn_convert_to_hw.py runs FINN's builder steps ``step_tidy_up``, ``step_streamline`` and
``step_convert_to_hw`` on it, compiled from the installed ``finn/builder/build_dataflow_steps.py``
(default ``DataflowBuildConfig()``; only FINN's renaming passes are made no-ops, so nodes keep our names).
``step_streamline`` is where FINN lowers convolutions to channels-last Im2Col + MatMul (LowerConvsToMatMul,
MakeMaxPoolNHWC, AbsorbTransposeIntoMultiThreshold, AbsorbConsecutiveTransposes: our streamline keeps
Conv nodes) and turns bipolar MatMuls into XnorPopcountMatMul; its ``Streamline()`` calls are kept, and
``test_finn_streamline_changes_nothing`` checks that on our graph FINN's streamlining itself
(AbsorbScalarBiasIntoMultiThreshold + ``Streamline()``) is a no-op, so what they do afterwards only tidies
FINN's own lowering (on 1W1A it absorbs the Mul/Add that ConvertBipolarMatMulToXnorPopcount adds into the
next MultiThreshold).

Measured with finn-plus 1.6.1 / qonnx 1.0.0 (table below): every node of the seven graphs becomes a
layer of domain finn.custom_op.fpgadataflow except, for the two NCHW-input models (CNV, KWS), the
NCHW->NHWC Transpose FINN puts first: ``step_convert_to_hw`` converts Transposes with InferShuffle, whose
default filter ``skip_first_node_transpose`` (``DataflowBuildConfig.infer_shuffle_skip_first = True``)
leaves the graph's first node on the host: "the first transpose converts NCHW to NHWC layout for data
preprocessing" (finn/transformation/fpgadataflow/convert_to_hw/shuffle.py). Each hidden
MatMul + MultiThreshold becomes one MVAU with its activation (binaryXnorMode=1 on 1W1A), the input
quantizer a standalone Thresholding (FLOAT32 input: the models take float pixels), the output
dequantization (float Mul, Add) FLOAT32 ElementwiseMul/ElementwiseAdd (``step_convert_to_hw`` applies
InferElementwiseBinaryOperation without its ``reject_output_dequant`` filter).
"""

from __future__ import annotations

import importlib.util
import json
import re
from collections import Counter
from pathlib import Path

import pytest

from qonnx_tools.testing import shared_dir

_spec = importlib.util.spec_from_file_location("consumers_helper", Path(__file__).with_name("_consumer.py"))
consumer = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(consumer)

PYTHON = consumer.consumer_python("finn", ["finn", "qonnx"])

_FC = {"Reshape": 1, "Thresholding": 1, "MVAU": 4, "ElementwiseMul": 1, "ElementwiseAdd": 1}

#: model -> the hardware layers (op type -> count) FINN's step_convert_to_hw makes of our streamlined graph;
#: in each, every MVAU but the last carries its activation (the last has none: a float Mul/Add follows).
MODELS: dict[str, dict[str, int]] = {
    "qonnx-model-zoo/tfc/TFC_1W1A.onnx": _FC,
    "qonnx-model-zoo/tfc/TFC_2W2A.onnx": _FC,
    "qonnx-model-zoo/kws/kwsmlp_w3a3.onnx": {"Thresholding": 1, "MVAU": 4, "ElementwiseMul": 1},
    "brevitas/bnn_tfc_1w1a/qonnx.onnx": _FC,
    "brevitas/bnn_tfc_2w2a/qonnx.onnx": _FC,
    "brevitas/bnn_sfc_1w2a/qonnx.onnx": _FC,
    "brevitas/bnn_cnv_2w2a/qonnx.onnx": {"Thresholding": 1, "ConvolutionInputGenerator": 8, "MVAU": 9, "Pool": 2,
                                         "ElementwiseMul": 1, "ElementwiseAdd": 1},
}

#: qonnx datatype names FINN's MVAU inference accepts (DataType.is_integer())
INTEGER = re.compile(r"(U?INT\d+|BIPOLAR|BINARY|TERNARY)")

pytestmark = [
    pytest.mark.shared,
    pytest.mark.skipif(shared_dir() is None, reason="../shared (real model corpus) is not present"),
    pytest.mark.skipif(PYTHON is None, reason="no Python with finn-plus and qonnx (set QONNX_TOOLS_FINN_PYTHON)"),
]


def _prepared(src: Path, dst: Path) -> Path:
    """Our ``prepare --target finn`` (cleanup, streamline) of ``src``, saved to ``dst``."""
    from qonnx_tools.model_io import load, save
    from qonnx_tools.prepare import prepare

    model = load(src)
    prepare(model, "finn")
    return save(model, dst)


@pytest.fixture(scope="module")
def finn_results(tmp_path_factory) -> dict[str, tuple[Path | str, dict | None]]:
    built = consumer.build(tmp_path_factory.mktemp("finn"), sorted(MODELS), _prepared)
    paths = [p for p in built.values() if isinstance(p, Path)]
    by_file = consumer.run_consumer(PYTHON, "finn_convert_to_hw.py", paths, timeout=900)
    return {rel: (p, by_file[str(p)] if isinstance(p, Path) else None) for rel, p in built.items()}


def _record(finn_results, rel: str) -> dict:
    built, record = finn_results[rel]
    assert isinstance(built, Path), f"our prepare --target finn failed:\n{built}"
    assert record["ok"], (f"FINN raised in {record.get('stage')}: {record['error']}\n{record.get('traceback', '')}"
                          f"\nrecorded before: {json.dumps({k: v for k, v in record.items() if k != 'traceback'})}")
    return record


def _left_by_design(node: dict) -> str | None:
    """Why FINN leaves ``node`` (a record of ``left``) outside its hardware layers by design; None if it should not."""
    if node["op_type"] == "Transpose" and node["index"] == 0 and node["reads_graph_input"] \
            and node["perm"] == [0, 2, 3, 1]:
        return ("InferShuffle's default filter skip_first_node_transpose keeps the first (NCHW->NHWC) Transpose "
                "on the host")
    return None


@pytest.mark.parametrize("rel", sorted(MODELS))
def test_finn_converts_every_node_to_a_hardware_layer(finn_results, rel):
    record = _record(finn_results, rel)
    not_mapped = [f"{n['op_type']} {n['name']!r} (node {n['index']}, inputs {n['inputs']}, outputs {n['outputs']})"
                  for n in record["left"] if _left_by_design(n) is None]
    by_design = [f"{n['op_type']} (node {n['index']}): {_left_by_design(n)}" for n in record["left"]
                 if _left_by_design(n) is not None]
    assert not not_mapped, ("nodes FINN's step_convert_to_hw left outside its hardware layers:\n  "
                            + "\n  ".join(not_mapped) + f"\nMatMuls it saw: {record['matmuls_hw_input']}"
                            + f"\nleft by FINN's design: {by_design}")
    hw = Counter(n["op_type"] for n in record["hw"])
    assert hw == Counter(MODELS[rel]), f"hardware layers {dict(hw)}, expected {MODELS[rel]}"
    mvaus = [n for n in record["hw"] if n["op_type"] == "MVAU"]
    without_activation = [n["name"] for n in mvaus if n["attributes"].get("noActivation")]
    assert without_activation == [mvaus[-1]["name"]], (
        f"MVAUs without their MultiThreshold: {without_activation} (only the last layer's should be)")


@pytest.mark.parametrize("rel", sorted(MODELS))
def test_finn_sees_integer_matmuls(finn_results, rel):
    """After qonnx's InferDataTypes (FINN's tidy-up), every MatMul reads integer activations and weights: what
    FINN's InferQuantizedMatrixVectorActivation needs (a FLOAT32 there leaves the MatMul on the host)."""
    record = _record(finn_results, rel)
    for stage in ("matmuls", "matmuls_hw_input"):
        assert record[stage], f"no MatMul in {stage}"
        floats = [m for m in record[stage] if not (INTEGER.fullmatch(m["input"]) and INTEGER.fullmatch(m["weight"]))]
        assert not floats, f"MatMuls with a non-integer input or weight ({stage}): {floats}"
        assert all(m["weight_is_initializer"] for m in record[stage]), record[stage]


@pytest.mark.parametrize("rel", sorted(MODELS))
def test_finn_streamline_changes_nothing(finn_results, rel):
    """FINN's own streamlining (AbsorbScalarBiasIntoMultiThreshold + Streamline()) on our output, after FINN's
    tidy-up, leaves the graph as it is (node for node: op types, attributes and constants)."""
    record = _record(finn_results, rel)
    change = record["finn_streamline"]
    assert not change["changed"], f"FINN's Streamline() still changes our streamlined graph: {change}"
