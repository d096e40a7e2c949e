"""Optional: qonnx 1.0 reads our ``convert --to qcdq`` output back: its ``QCDQToQuant`` raises
the Q -> (Clip) -> DQ patterns of every Brevitas corpus model to QONNX ``Quant`` nodes, and
qonnx's ``execute_onnx`` on the raised model computes what our executor computes on the QONNX
original.

qonnx must stay out of this project's environment, so it runs in a separate interpreter
(``$QONNX_TOOLS_QONNX_PYTHON`` or ``.venv-qonnx/bin/python`` in the project root) through
tests/consumers/qonnx_qcdq_read.py; without one the tests are skipped. Set one up with:

    python -m venv .venv-qonnx && .venv-qonnx/bin/pip install qonnx==1.0.0 onnxruntime

The driver does what a qonnx user would: ``ModelWrapper``, ``cleanup_model``,
``QCDQToQuant`` (``qonnx.transformation.qcdq_to_qonnx``), ``cleanup_model``,
``execute_onnx``. Each raised model must contain QONNX Quant nodes and no QuantizeLinear or
DequantizeLinear left; its outputs must agree with the executor on the original and with the
corpus' own reference output (io.npz, Brevitas/PyTorch) under ``qonnx_tools.verify``'s
default rule (exact, or float outputs within 1e-5 abs/rel and less than half a quantization
step); imagenet_mobilenet_v1_4b is tie-sensitive (``TIE_SENSITIVE``): top-1 must agree.
``QCDQToQuant`` unpacks exactly three DequantizeLinear inputs, so every DQ needs its zero point.

Two qonnx 1.0 limitations, measured, make a model an expected failure (only when qonnx fails
with exactly that error):

* per-channel weights: for a DequantizeLinear of a constant (our integer weight codes) with
  ``axis`` and a per-channel scale, QCDQToQuant computes ``(codes - zero_point) * scale`` before
  reshaping the scale to the axis: NumPy broadcasts the (C,) scale against the last axis and
  fails ("operands could not be broadcast together"), or scales the wrong axis when the
  shapes happen to broadcast. With ``convert(..., keep_float_weights=True)`` the weights stay
  float behind a Q -> DQ pair, which QCDQToQuant raises correctly:
  ``test_qonnx_reads_back_keep_float_weights`` checks that form for the models concerned.
* float8: QCDQToQuant maps only integer element types (``Unsupported element type: 17``,
  float8e4m3fn); qonnx cannot raise FloatQuant lowerings.

And one of our form: with a non-zero zero point (asymmetric_zero_point) we quantize as
Div(scale) -> Add(zp) -> QuantizeLinear(1, 0) -> DequantizeLinear(scale, zp), which rounds like
IntQuant where QuantizeLinear(scale, zp) would not; QCDQToQuant raises only Q/DQ pairs with
equal scale and zero point, so in the keep-float-weights form it raises nothing (the file still
runs and agrees, as QCDQ).

BipolarQuant activations are lowered without Q/DQ and stay as they are; bipolar weights
(constant DQ) come back as Quant.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from qonnx_tools.testing import shared_dir

_spec = importlib.util.spec_from_file_location("consumers_helper", Path(__file__).with_name("_consumer.py"))
consumer = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(consumer)

PYTHON = consumer.consumer_python("qonnx", ["qonnx.transformation.qcdq_to_qonnx", "qonnx.core.onnx_exec",
                                            "onnxruntime"])
MODELS = consumer.qcdq_corpus()

_PER_CHANNEL = ("operands could not be broadcast together",
                "qonnx 1.0 QCDQToQuant scales a per-channel DequantizeLinear of constant weight codes before reshaping "
                "the scale to its axis (NumPy broadcast error); with keep_float_weights=True it reads the model")
_UINT8_SHIFT = ("QCDQToQuant: AssertionError",
                "qonnx 1.0 QCDQToQuant fails with a bare AssertionError on these files; they differ from the plain "
                "lowering (--target openvino|tvm) only by the ort profile's exact rewrites: int8 activations behind a "
                "Clip moved to uint8 with zero point + 128 (and, for residual_shared_quant, Relus removed)")
_FLOAT8 = ("Unsupported element type: 17", "qonnx 1.0 QCDQToQuant maps only integer Q/DQ types, not float8e4m3fn")
#: model -> (text of qonnx's error, measured reason)
QONNX_KNOWN = {
    "brevitas/asymmetric_zero_point/qonnx.onnx": _PER_CHANNEL,
    "brevitas/decoder_convtranspose2d_upsample/qonnx.onnx": _PER_CHANNEL,
    "brevitas/depthwise_grouped_conv2d/qonnx.onnx": _PER_CHANNEL,
    "brevitas/imagenet_mobilenet_v1_4b/qonnx.onnx": _PER_CHANNEL,
    "brevitas/mlp_bitwidths/qonnx.onnx": _PER_CHANNEL,
    "brevitas/seed_linear_relu_perchannel/qonnx.onnx": _PER_CHANNEL,
    "brevitas/fp8_ocp/qonnx.onnx": _FLOAT8,
    # per-channel since the ort profile folds their BatchNormalizations into per-channel weight scales
    "brevitas/batchnorm_between/qonnx.onnx": _PER_CHANNEL,
    "brevitas/bnn_cnv_2w2a/qonnx.onnx": _PER_CHANNEL,
    "brevitas/residual_shared_quant/qonnx.onnx": _PER_CHANNEL,
    "brevitas/binary_ternary/qonnx.onnx": _UINT8_SHIFT,
    "brevitas/bnn_sfc_1w2a/qonnx.onnx": _UINT8_SHIFT,
    "brevitas/bnn_tfc_2w2a/qonnx.onnx": _UINT8_SHIFT,
}
KEEP_FLOAT = sorted(rel for rel, known in QONNX_KNOWN.items() if known is _PER_CHANNEL)
#: the same with keep_float_weights=True
KEEP_FLOAT_KNOWN = {
    "brevitas/asymmetric_zero_point/qonnx.onnx": (
        "QCDQToQuant raised no Quant node",
        "with a non-zero zero point we quantize as Div(scale) -> Add(zp) -> QuantizeLinear(1, 0) -> "
        "DequantizeLinear(scale, zp) (rounds like IntQuant); QCDQToQuant raises only a Q/DQ pair with equal scale "
        "and zero point, so it raises nothing here"),
    "brevitas/residual_shared_quant/qonnx.onnx": _UINT8_SHIFT,
}

pytestmark = [
    pytest.mark.shared,
    pytest.mark.skipif(shared_dir() is None, reason="../shared (real model corpus) is not present"),
    pytest.mark.skipif(PYTHON is None, reason="no Python with qonnx 1.0 and onnxruntime "
                                              "(set QONNX_TOOLS_QONNX_PYTHON)"),
]


# -- qonnx ------------------------------------------------------------------------------------------------------

def _converted_keep_float(src: Path, dst: Path) -> Path:
    """Our ``convert --to qcdq --keep-float-weights`` of ``src``, saved to ``dst``."""
    from qonnx_tools.convert import convert
    from qonnx_tools.model_io import load, save

    model = load(src)
    convert(model, to="qcdq", keep_float_weights=True)
    return save(model, dst)


@pytest.fixture(scope="module")
def qonnx_results(our_qcdq, tmp_path_factory):
    """Default QCDQ of every model and keep-float-weights QCDQ of ``KEEP_FLOAT``, read by qonnx in one run."""
    folder = tmp_path_factory.mktemp("qonnx")
    for sub in ("default", "keep_float", "keep_float_built"):
        (folder / sub).mkdir()
    cases = {("default", rel): c for rel, c in consumer.stage(folder / "default", our_qcdq).items()}
    keep_float = consumer.build(folder / "keep_float_built", KEEP_FLOAT, _converted_keep_float)
    cases.update({("keep_float", rel): c for rel, c in consumer.stage(folder / "keep_float", keep_float).items()})
    return consumer.run_staged(PYTHON, "qonnx_qcdq_read.py", cases)


def _failure(case: consumer.Case, record: dict, label: str) -> str | None:
    """Why qonnx's reading of our file is wrong (None: it raised Quant nodes, left no Q/DQ and agrees)."""
    if not record["ok"]:
        return f"qonnx failed on our QCDQ: {record['error']}"
    ops = record["ops_after"]
    print(f"\n{case.rel} [{label}]: {record['quant_nodes']} Quant nodes raised, ops after {ops}")
    if record["quant_nodes"] == 0:
        return f"QCDQToQuant raised no Quant node: ops before it {record['ops_before']}"
    left = {op: n for op, n in ops.items() if op in ("QuantizeLinear", "DequantizeLinear")}
    if left:
        return f"QCDQToQuant left {left} unraised (ops before it: {record['ops_before']})"
    problems, figures = consumer.judge(case, consumer.consumer_outputs(record))
    print(f"  {figures}")
    return "\n".join(problems) or None


def _check(results: dict, label: str, rel: str, known: dict) -> None:
    case, record = results[(label, rel)]
    assert case.path is not None, case.error
    failure = _failure(case, record, label)
    if rel in known:
        match, reason = known[rel]
        assert failure is not None, f"qonnx now reads {rel} ({label}): remove it from the expected failures"
        assert match in failure, f"qonnx failed differently than measured: {failure}"
        pytest.xfail(reason)
    assert failure is None, failure


@pytest.mark.parametrize("rel", MODELS)
def test_qonnx_reads_back_our_qcdq(qonnx_results, rel):
    _check(qonnx_results, "default", rel, QONNX_KNOWN)


@pytest.mark.parametrize("rel", KEEP_FLOAT)
def test_qonnx_reads_back_keep_float_weights(qonnx_results, rel):
    """Per-channel models in the form qonnx 1.0 can raise: float weights behind Q -> DQ."""
    _check(qonnx_results, "keep_float", rel, KEEP_FLOAT_KNOWN)
