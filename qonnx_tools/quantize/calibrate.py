"""Calibrators: they see a tensor batch by batch and end with its range ``amax``.

``MaxCalibrator`` is pytorch_quantization's ``max`` method: the largest |x| seen, over every axis but
the kept ones (``QuantSpec.axis``), kept as a running maximum so memory stays one amax per channel.
"""

from __future__ import annotations

import numpy as np


class MaxCalibrator:
    """Running max |x| over all axes but ``axis`` (the kept ones; None: one value for the whole tensor)."""

    def __init__(self, axis: int | tuple[int, ...] | None = None):
        self.axis = (axis,) if isinstance(axis, int) else (tuple(axis) if axis is not None else None)
        self._amax: np.ndarray | None = None

    def collect(self, x: np.ndarray) -> None:
        x = np.abs(np.asarray(x, dtype=np.float64))
        if self.axis is None:
            amax = np.asarray(x.max() if x.size else 0.0)
        else:
            kept = {a % x.ndim for a in self.axis}
            amax = x.max(axis=tuple(a for a in range(x.ndim) if a not in kept), keepdims=True)
        self._amax = amax if self._amax is None else np.maximum(self._amax, amax)

    def amax(self) -> np.ndarray:
        """The range seen so far, shaped to broadcast against the tensor (a scalar without kept axes)."""
        if self._amax is None:
            raise ValueError("no data collected")
        return self._amax
