"""The seed's pytorch_quantization examples (shared/seeds, tensor_quant and QuantDescriptor), reproduced
with our calibrator, our Quant parameters and our executor's Quant kernel.

The input of the first example is ``torch.rand(10)`` after ``torch.manual_seed(12345)``; torch is not a
dependency here, so its exact float32 values are written below (obtained once with torch 2.12.1 on CPU;
they print as the seed's ``tensor([0.9817, 0.8796, ...])``). The expected codes and scale are the seed's.
"""

from __future__ import annotations

import numpy as np
import pytest

from qonnx_tools.executor import Executor
from qonnx_tools.quantize import MaxCalibrator, QuantSpec, quant_params

SEED_X = np.array([float.fromhex(h) for h in (
    "0x1.f6a3c4p-1", "0x1.c25bcap-1", "0x1.fbfa3ap-1", "0x1.d82204p-2", "0x1.54da4p-4",
    "0x1.6d6d48p-3", "0x1.783ff8p-2", "0x1.22a2fcp-1", "0x1.59b594p-2", "0x1.b2111p-3")], np.float32)


def _run_quant(x: np.ndarray, params) -> np.ndarray:
    from onnx import TensorProto, helper, numpy_helper

    from qonnx_tools._ir import ir
    from qonnx_tools.domains import QONNX

    inits = [numpy_helper.from_array(params.scale, "s"), numpy_helper.from_array(params.zero_point, "z"),
             numpy_helper.from_array(params.bitwidth, "b")]
    node = helper.make_node("Quant", ["x", "s", "z", "b"], ["y"], domain=QONNX, signed=params.signed,
                            narrow=params.narrow, rounding_mode=params.rounding_mode)
    graph = helper.make_graph([node], "q", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x.shape))],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, list(x.shape))], inits)
    model = ir.serde.deserialize_model(helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid(QONNX, 1)]))
    return Executor(model).run({"x": x})["y"]


def test_tensor_quant_example_8_bit_max():
    assert np.round(SEED_X.astype(np.float64), 4).tolist() == [0.9817, 0.8796, 0.9921, 0.4611, 0.0832, 0.1784, 0.3674, 0.5676,
                                            0.3376, 0.2119]  # the seed's printout of torch.rand(10)
    calibrator = MaxCalibrator()
    calibrator.collect(SEED_X)
    params = quant_params(calibrator.amax(), QuantSpec(bits=8))
    assert round(1 / float(params.scale), 4) == 128.0057             # the seed: "with scale=128.0057"
    y = _run_quant(SEED_X, params)
    codes = np.rint(y / params.scale)
    assert codes.tolist() == [126, 113, 127, 59, 11, 23, 47, 73, 43, 27]  # the seed's quant_x
    # the seed's fake_quant_x, to its 4 printed decimals
    assert np.round(y.astype(np.float64), 4).tolist() == [0.9843, 0.8828, 0.9921, 0.4609, 0.0859, 0.1797, 0.3672, 0.5703,
                                       0.3359, 0.2109]


def _transcription(x: np.ndarray, num_bits: int, axis: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """QuantDescriptor(num_bits, axis, unsigned=True) with TensorQuantizer's max calibration, transcribed
    to NumPy: amax over every axis but ``axis``; scale = (2^b - 1) / amax; codes = clamp(round(x * scale),
    0, 2^b - 1); output codes / scale (float32 throughout, as torch computes)."""
    reduce = tuple(a for a in range(x.ndim) if a not in axis)
    amax = np.abs(x).max(axis=reduce, keepdims=True).astype(np.float32)
    scale = (np.float32(2 ** num_bits - 1) / amax).astype(np.float32)
    codes = np.clip(np.rint(x * scale), 0, 2 ** num_bits - 1).astype(np.float32)
    return codes, (codes / scale).astype(np.float32)


@pytest.mark.parametrize("seed", range(5))
def test_quant_descriptor_4_bit_unsigned_per_axis(seed):
    x = np.random.default_rng(seed).random((10, 9, 8, 7), dtype=np.float32)  # torch.rand-like: [0, 1)
    calibrator = MaxCalibrator(axis=0)
    for batch in np.split(x, 3, axis=1):  # streamed in three batches along another axis
        calibrator.collect(batch)
    params = quant_params(calibrator.amax(), QuantSpec(bits=4, unsigned=True, axis=(0,)))
    assert params.scale.shape == (10, 1, 1, 1)
    y = _run_quant(x, params)
    want_codes, want = _transcription(x, 4, (0,))
    # multiply-by-(15/amax) vs divide-by-(amax/15) could put a value on opposite sides of a .5 in float32;
    # measured: no code differs over 200 seeds x 5040 values
    np.testing.assert_array_equal(np.rint(y / params.scale), want_codes)
    np.testing.assert_allclose(y, want, rtol=1e-6)
