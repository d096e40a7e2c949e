"""Post-training quantization of real architectures: every ``light_*.onnx`` of the onnx wheel (AlexNet,
DenseNet-121, Inception v1/v2, ResNet-50, ShuffleNet, SqueezeNet, VGG-19, ZFNet-512; opset 9, IR 3,
weights made by ConstantOfShape, initializers listed as inputs) quantizes (at 4 or 8 bits, alternating:
``WIDTHS``), converts to QCDQ, runs in onnxruntime and agrees with our executor; a 4-bit model then
streamlines (FINN style) without changing what it computes. (The float originals against their shipped outputs:
tests/executor/test_light_models.py.)

The weights are constants and all 1000 logits of a model are equal, so the Softmax outputs are uniform and
hide errors: the comparisons are on the logits (the last Softmax's input; DenseNet's output), kept as an
extra graph output.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from qonnx_tools._ir import ir
from qonnx_tools.convert import convert
from qonnx_tools.domains import QONNX
from qonnx_tools.executor import Executor
from qonnx_tools.model_io import load
from qonnx_tools.quantize import quantize
from qonnx_tools.runtime import run_onnxruntime

LIGHT = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"
NAMES = ["bvlc_alexnet", "densenet121", "inception_v1", "inception_v2", "resnet50", "shufflenet", "squeezenet",
         "vgg19", "zfnet512"]
#: executor vs onnxruntime on the logits when every activation quantizer reads onnxruntime's own input, and
#: before vs after streamlining: measured at most 1e-6 and 5.3e-6 relative to the largest logit (float32 sums
#: in another order; logits up to 4e31)
RTOL = 2e-5


def _load(name: str) -> tuple[ir.Model, str, str]:
    path = LIGHT / f"light_{name}.onnx"
    if not path.is_file():
        pytest.skip(f"onnx's light models are not installed ({path} absent)")
    model = load(path)
    softmax = [n for n in model.graph if n.op_type == "Softmax"]
    if softmax:  # the logits become an output too, so every rewrite must keep them
        model.graph.outputs.append(softmax[-1].inputs[0])
    (data,) = [v.name for v in model.graph.inputs if v.name not in model.graph.initializers]
    return model, data, model.graph.outputs[-1].name


def _close(got: np.ndarray, want: np.ndarray) -> None:
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=RTOL * float(np.abs(want).max()))


def _agree_layer_by_layer(model: ir.Model, lowered: ir.Model, data: str, x: np.ndarray, logits: str) -> None:
    """Every activation quantizer of ours, fed onnxruntime's own input to it (``substitute``), must give
    exactly onnxruntime's Q->DQ output, and the logits then agree to float32 summation order. (Run end to
    end, the two differ where a float32 sum lands on a rounding tie in one and next to it in the other:
    these models' constant weights make ties common, and one flipped code moves every logit.)"""
    quants = [n for n in model.graph if n.domain == QONNX and n.inputs[0].const_value is None]
    producers = {v.name: n for n in lowered.graph for v in n.outputs}
    theirs_input = {}  # our quantizer's input name -> the input of the QuantizeLinear that replaced it
    for quant in quants:
        node = producers[quant.outputs[0].name]  # DequantizeLinear <- (Clip) <- QuantizeLinear
        while node.op_type != "QuantizeLinear":
            node = node.inputs[0].producer()
        if quant.inputs[0].producer() is not None:
            theirs_input[quant.inputs[0].name] = node.inputs[0].name
    inputs = list(theirs_input.values())
    outputs = [n.outputs[0].name for n in quants]
    theirs = run_onnxruntime(lowered, {data: x}, extra_outputs=[*inputs, *outputs])
    seen: dict[str, np.ndarray] = {}
    hooks = {name: (lambda a, name=name: seen.__setitem__(name, a)) for name in outputs}
    substitute = {ours_name: theirs[name] for ours_name, name in theirs_input.items()}
    ours = Executor(model).run({data: x}, substitute=substitute, hooks=hooks)
    for name in outputs:
        np.testing.assert_array_equal(seen[name], theirs[name], err_msg=name)
    _close(theirs[logits], ours[logits])


#: one width per model here (both for all: ``python benchmarks/light_ptq.py``, README; all 18 take ~3 min,
#: too long for the suite); 4 bits where the model then streamlines, alternating along the list
WIDTHS = {name: 4 if i % 2 == 0 else 8 for i, name in enumerate(NAMES)}


@pytest.mark.parametrize("name", NAMES)
def test_quantizes_to_qcdq_that_onnxruntime_runs_alike_and_streamlines_at_4_bits(name):
    rng = np.random.default_rng(sum(map(ord, name)))
    x = rng.random((1, 3, 224, 224), dtype=np.float32)
    bits = WIDTHS[name]
    model, data, logits = _load(name)
    result = quantize(model, [rng.random((1, 3, 224, 224), dtype=np.float32)], weights=bits, acts=bits,
                      per_channel=True)
    computes = [n for n in model.graph if n.op_type in ("Conv", "Gemm", "MatMul")]
    quantized_weights = sum(t.kind == "weight" for t in result.tensors)
    assert quantized_weights == len(computes) and not result.float_nodes
    lowered = ir.serde.deserialize_model(ir.serde.serialize_model(model))
    convert(lowered, "qcdq")
    assert all(n.domain == "" for n in lowered.graph)
    _agree_layer_by_layer(model, lowered, data, x, logits)
    del lowered
    if bits != 4:
        return
    from qonnx_tools.streamline import streamline

    ours = Executor(model).run({data: x})[logits]
    streamline(model)
    assert any(n.op_type == "MultiThreshold" for n in model.graph)
    assert not any(n.op_type == "Quant" and n.domain == QONNX and n.inputs[0].const_value is None
                   for n in model.graph)  # no activation quantizer left: all became thresholds
    _close(Executor(model).run({data: x})[logits], ours)
