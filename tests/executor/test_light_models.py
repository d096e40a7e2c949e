"""The executor on the ``light_*.onnx`` models shipped in the onnx wheel (onnx/backend/test/data/light).

AlexNet, DenseNet-121, Inception v1/v2, ResNet-50, ShuffleNet, SqueezeNet, VGG-19 and ZFNet-512
at opset 9, with every weight made by ConstantOfShape. Two independent references:

* the shipped ``light_<name>_output_0.pb``, for the input onnx's backend runner builds
  (``Runner.generate_dummy_data(..., random=False)``: ``arange(n).reshape(shape) / n`` as float32),
  at the tolerances of onnx's own model test cases (onnx/backend/test/case/model/__init__.py);
* onnxruntime (CPU, graph optimisations off, as in qonnx_tools.runtime) on the same ModelProto.

The weights are constant, so all 1000 logits of a model are equal and the shipped outputs are
a uniform 0.001 after Softmax: a wrong kernel can hide there. The onnxruntime test therefore
also compares the Softmax's input (the logits; DenseNet's output has no Softmax and is compared
as is) and the output of every LRN node, at a tight tolerance.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from qonnx_tools.executor import Executor
from qonnx_tools.model_io import load

LIGHT_DIR = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"

#: model name -> (rtol, atol) of onnx's model test case (onnx/backend/test/case/model/__init__.py)
ONNX_TOLERANCES: dict[str, tuple[float, float]] = {
    "bvlc_alexnet": (1e-3, 1e-7),
    "densenet121": (2e-3, 1e-7),
    "inception_v1": (1e-3, 1e-7),
    "inception_v2": (1e-3, 1e-7),
    "resnet50": (1e-3, 1e-7),
    "shufflenet": (1e-3, 1e-7),
    "squeezenet": (1e-3, 1e-7),
    "vgg19": (1e-3, 1e-7),
    "zfnet512": (1e-3, 1e-7),
}

#: executor vs onnxruntime, both float32: measured at most 4.3e-6 relative on these models'
#: logits (up to 4e31 after ~20 float32 layers); a wrong LRN beta, bias, window or alpha/size
#: moves AlexNet's logits by 4e-4 to 0.5 relative (and its LRN outputs by 1e-4 to 0.6).
TIGHT_RTOL = 3e-5

#: Final outputs that cannot be compared at float32: SqueezeNet's 1000 logits are ~9.5e9, where one
#: float32 step is 1024, and its last Conv runs through BLAS sgemm, whose rounding differs between output
#: columns (OpenBLAS 0.3.31 Haswell: columns 0-7 vs the rest), so 1-ULP-different logits give Softmax
#: outputs of 0 and 0.00136 instead of a uniform 0.001. The logits are compared with onnxruntime's
#: (tightly), and the final output with a NumPy softmax of our own logits.
ILL_CONDITIONED_SOFTMAX = {
    "squeezenet": "logits ~9.5e9 differ by one float32 step (1024) between BLAS output columns; "
    "Softmax turns that into 0 vs 0.00136",
}


def _path(name: str) -> Path:
    path = LIGHT_DIR / f"light_{name}.onnx"
    if not path.is_file():
        pytest.skip(f"onnx's light models are not installed ({path} absent)")
    return path


def _dummy_input(proto: onnx.ModelProto, name: str) -> tuple[str, np.ndarray]:
    """The one non-initializer graph input and the value onnx's backend runner feeds it."""
    from onnx.backend.test.runner import Runner

    initialized = {i.name for i in proto.graph.initializer}
    (info,) = [v for v in proto.graph.input if v.name not in initialized]
    return info.name, Runner.generate_dummy_data(info, seed=0, name=name, random=False)


def _probes(proto: onnx.ModelProto) -> list[str]:
    """Tensors compared besides the output: the last Softmax's input (else the output) and LRN outputs."""
    softmaxes = [n for n in proto.graph.node if n.op_type == "Softmax"]
    logits = softmaxes[-1].input[0] if softmaxes else proto.graph.output[0].name
    return [logits] + [n.output[0] for n in proto.graph.node if n.op_type == "LRN"]


@functools.cache
def _runs(name: str) -> tuple[str, dict[str, np.ndarray], dict[str, np.ndarray], list[str]]:
    """(output name, our tensors, onnxruntime's tensors, probe names) for one light model."""
    import onnxruntime as ort

    path = _path(name)
    proto = onnx.load(path)
    input_name, x = _dummy_input(proto, name)
    probes = _probes(proto)
    output = proto.graph.output[0].name
    ours: dict[str, np.ndarray] = {}
    hooks = {tensor: functools.partial(ours.__setitem__, tensor) for tensor in probes}  # only these are kept
    ours.update(Executor(load(path)).run({input_name: x}, hooks=hooks))

    extended = onnx.ModelProto()
    extended.CopyFrom(proto)
    outputs = {o.name for o in extended.graph.output}
    for tensor in probes:
        if tensor not in outputs:
            extended.graph.output.add(name=tensor)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 3
    session = ort.InferenceSession(extended.SerializeToString(), options, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    theirs = dict(zip(names, session.run(names, {input_name: x})))
    return output, ours, theirs, probes


def _expected(name: str) -> np.ndarray:
    _path(name)
    return numpy_helper.to_array(onnx.load_tensor(str(LIGHT_DIR / f"light_{name}_output_0.pb")))


def _check_final(name: str, got: np.ndarray, want: np.ndarray, rtol: float, atol: float, logits: np.ndarray) -> None:
    """``got`` against ``want``; for an ILL_CONDITIONED_SOFTMAX model, against a NumPy softmax (opset 9: of the
    logits flattened from axis 1) of our own logits instead, which the onnxruntime test holds tightly."""
    assert got.shape == want.shape and got.dtype == want.dtype, (got.shape, got.dtype, want.shape, want.dtype)
    if name in ILL_CONDITIONED_SOFTMAX:
        flat = logits.astype(np.float64).reshape(logits.shape[0], -1)
        e = np.exp(flat - flat.max(axis=1, keepdims=True))
        want = (e / e.sum(axis=1, keepdims=True)).reshape(got.shape)
        rtol, atol = 1e-6, 1e-9  # float32 rounding of the same arithmetic
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)


@pytest.mark.parametrize("name", sorted(ONNX_TOLERANCES))
def test_light_model_matches_shipped_output(name):
    output, ours, _, probes = _runs(name)
    rtol, atol = ONNX_TOLERANCES[name]
    _check_final(name, ours[output], _expected(name), rtol, atol, ours[probes[0]])


@pytest.mark.parametrize("name", sorted(ONNX_TOLERANCES))
def test_light_model_matches_onnxruntime(name):
    output, ours, theirs, probes = _runs(name)
    # intermediate tensors first: they fail on a wrong kernel even when Softmax flattens the output
    for tensor in probes:
        got, want = ours[tensor], theirs[tensor]
        assert got.shape == want.shape and got.dtype == want.dtype, tensor
        scale = float(np.abs(want).max())
        np.testing.assert_allclose(got, want, rtol=TIGHT_RTOL, atol=TIGHT_RTOL * scale, err_msg=tensor)
    _check_final(name, ours[output], theirs[output], TIGHT_RTOL, 1e-8, ours[probes[0]])
