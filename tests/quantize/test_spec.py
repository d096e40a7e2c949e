"""quant_params: pytorch_quantization's ranges (tensor_quant: max_bound = 2^(b-1) - 1 signed, 2^b - 1
unsigned, symmetric), the zero-amax convention and power-of-two rounding up."""

from __future__ import annotations

import numpy as np
import pytest

from qonnx_tools.quantize import MaxCalibrator, QuantSpec, quant_params


@pytest.mark.parametrize("bits, unsigned, max_bound", [(8, False, 127), (8, True, 255), (4, False, 7),
                                                       (4, True, 15), (2, False, 1), (16, False, 32767)])
def test_scale_is_amax_over_the_largest_code(bits, unsigned, max_bound):
    params = quant_params(2.5, QuantSpec(bits=bits, unsigned=unsigned))
    assert float(params.scale) == np.float32(2.5 / max_bound)
    assert (params.signed, params.narrow) == ((0, 0) if unsigned else (1, 1))  # signed: symmetric range
    assert float(params.bitwidth) == bits and float(params.zero_point) == 0
    wide = quant_params(2.5, QuantSpec(bits=bits, unsigned=unsigned, narrow=False))
    assert wide.narrow == 0 and float(wide.scale) == float(params.scale)  # narrow moves the low end only


def test_zero_amax_channel_gets_scale_one_and_pow2_rounds_up():
    params = quant_params(np.array([[0.0], [3.0], [0.1]]), QuantSpec(bits=8, pow2=True))
    assert params.scale.reshape(-1).tolist() == [1.0, 2.0 ** -5, 2.0 ** -10]  # 3/127 -> 1/32; 0.1/127 -> 2^-10
    assert np.all(params.scale.reshape(-1)[1:] >= np.array([3.0, 0.1]) / 127)


def test_max_calibrator_streams_and_keeps_axes():
    rng = np.random.default_rng(0)
    batches = [rng.normal(size=(4, 3, 5)) for _ in range(6)]
    whole = np.concatenate(batches)
    per_tensor, per_channel = MaxCalibrator(), MaxCalibrator(axis=1)
    for b in batches:
        per_tensor.collect(b)
        per_channel.collect(b)
    assert float(per_tensor.amax()) == np.abs(whole).max()
    np.testing.assert_array_equal(per_channel.amax(), np.abs(whole).max(axis=(0, 2), keepdims=True))


def test_bad_specs_are_refused():
    for bits in (0, 33, 2.5):
        with pytest.raises(ValueError):
            QuantSpec(bits=bits)
    with pytest.raises(ValueError, match="bipolar"):
        quant_params(1.0, QuantSpec(bits=1))
    with pytest.raises(ValueError):
        quant_params(-1.0, QuantSpec())
    with pytest.raises(ValueError):
        MaxCalibrator().amax()
