"""Helpers of qonnx_tools.testing that decide test outcomes."""

import numpy as np

from qonnx_tools.testing import first_divergence


def test_first_divergence_is_the_first_nonzero_layer_in_order():
    layers = [("a", np.zeros(3)), ("b", np.array([0.0, 1.0, 0.0])), ("c", np.array([5.0]))]
    assert first_divergence(layers) == ("b", 1.0)
    assert first_divergence([("a", np.zeros(2)), ("c", np.zeros(0))]) is None
