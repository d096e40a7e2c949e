"""Optional: TVM (Relax ONNX frontend, llvm, Relax VM) runs our ``convert --to qcdq --target tvm``-equivalent output (the plain lowering) of every
Brevitas corpus model and computes what our executor computes on the QONNX original.

TVM must stay out of this project's environment, so it runs in a separate interpreter
(``$QONNX_TOOLS_TVM_PYTHON`` or ``.venv-tvm/bin/python`` in the project root) through
tests/consumers/tvm_run.py; without one the tests are skipped. Set one up with:

    python -m venv .venv-tvm && .venv-tvm/bin/pip install apache-tvm==0.27.0.post1 onnx numpy

(0.27.0.post1 is pip's newest apache-tvm for CPython 3.11; Relay is gone, the Relax frontend
imports our Q/DQ as Relax quantize/dequantize ops around float Conv/Gemm/MatMul.)

Expected values: our executor on the original qonnx.onnx run on the corpus input, and the
corpus' own reference output (io.npz, Brevitas/PyTorch), which the executor matches within
float32 noise. Agreement is ``qonnx_tools.verify``'s default rule: exact, or float outputs
within 1e-5 abs/rel and less than half a quantization step; no step accepted.
imagenet_mobilenet_v1_4b is tie-sensitive (``TIE_SENSITIVE``): its top-1 class must agree.

Measured with apache-tvm 0.27.0.post1: every quantized output is exact, float outputs (a float
Gemm after the last quantizer) differ by at most 2.4e-7; imagenet_mobilenet_v1_4b is within
float noise of io.npz and 0.38 from the executor (near-ties decided by summation order), top-1
equal. fp8_ocp is not imported (``TVM_UNSUPPORTED``): the frontend's QuantizeLinear accepts no
float8 zero point. Building takes most of the time (about 1 min for the corpus, 15 s of it
mobilenet).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from qonnx_tools.testing import shared_dir

_spec = importlib.util.spec_from_file_location("consumers_helper", Path(__file__).with_name("_consumer.py"))
consumer = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(consumer)

PYTHON = consumer.consumer_python("tvm", ["tvm.relax.frontend.onnx", "onnx", "numpy"])
MODELS = consumer.qcdq_corpus()

#: model -> (text of TVM's error, measured reason): an op or type we emit that the Relax ONNX frontend lacks.
TVM_UNSUPPORTED = {
    "brevitas/fp8_ocp/qonnx.onnx": (
        "zero_point param datatype should be one of",
        "TVM 0.27's Relax ONNX frontend rejects QuantizeLinear with a float8_e4m3fn zero point (FloatQuant lowered "
        "to float8 Q/DQ): 'zero_point param datatype should be one of [int8, uint8, int16, uint16, int32, uint32, "
        "float16], but got T.float8_e4m3fn'"),
}

pytestmark = [
    pytest.mark.shared,
    pytest.mark.skipif(shared_dir() is None, reason="../shared (real model corpus) is not present"),
    pytest.mark.skipif(PYTHON is None, reason="no Python with apache-tvm and onnx (set QONNX_TOOLS_TVM_PYTHON)"),
]


# -- TVM --------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tvm_results(our_qcdq_plain, tmp_path_factory):
    return consumer.run_staged(PYTHON, "tvm_run.py", consumer.stage(tmp_path_factory.mktemp("tvm"), our_qcdq_plain))


@pytest.mark.parametrize("rel", MODELS)
def test_tvm_runs_our_qcdq_like_executor(tvm_results, rel):
    case, record = tvm_results[rel]
    assert case.path is not None, case.error
    if rel in TVM_UNSUPPORTED:
        match, reason = TVM_UNSUPPORTED[rel]
        assert not record["ok"], f"TVM now runs {rel}: remove it from TVM_UNSUPPORTED"
        assert match in record["error"], f"TVM failed differently than measured: {record['error']}"
        pytest.xfail(reason)
    assert record["ok"], f"TVM failed on our QCDQ ({', '.join(record.get('ops', []))}): {record['error']}"
    problems, figures = consumer.judge(case, consumer.consumer_outputs(record))
    print(f"\n{rel}: {figures} (seconds: {record['seconds']})")
    assert not problems, "\n".join(problems)
