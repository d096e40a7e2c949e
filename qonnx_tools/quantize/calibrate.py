"""Calibrators: they see a tensor batch by batch and end with its range ``amax``.

``MaxCalibrator`` is pytorch_quantization's ``max`` method: the largest |x| seen, over every axis but
the kept ones (``QuantSpec.axis``), kept as a running maximum so memory stays one amax per channel.
``HistogramCalibrator`` keeps a histogram of |x| (per tensor) for its ``percentile``, ``mse`` and
``entropy`` methods.
"""

from __future__ import annotations

import numpy as np


class MaxCalibrator:
    """Running max |x| over all axes but ``axis`` (the kept ones; None: one value for the whole tensor).

    Kept as the running minimum and maximum, reduced in the tensor's own dtype: max |x| = max(-min, max)
    is exact there and needs no |x| copy; ``minimum`` (the smallest value seen) tells a caller whether the
    tensor was ever negative."""

    def __init__(self, axis: int | tuple[int, ...] | None = None):
        self.axis = (axis,) if isinstance(axis, int) else (tuple(axis) if axis is not None else None)
        self._low: np.ndarray | None = None
        self._high: np.ndarray | None = None

    def collect(self, x: np.ndarray) -> None:
        x = np.asarray(x)
        if x.size == 0:
            if self.axis is None and self._low is None:  # an empty tensor has range 0
                self._low = self._high = np.zeros((), np.float64)
            return
        reduce = None
        if self.axis is not None:
            kept = {a % x.ndim for a in self.axis}
            reduce = tuple(a for a in range(x.ndim) if a not in kept)
        low = x.min(axis=reduce, keepdims=reduce is not None).astype(np.float64)
        high = x.max(axis=reduce, keepdims=reduce is not None).astype(np.float64)
        self._low = low if self._low is None else np.minimum(self._low, low)
        self._high = high if self._high is None else np.maximum(self._high, high)

    @property
    def minimum(self) -> float:
        """The smallest value collected."""
        if self._low is None:
            raise ValueError("no data collected")
        return float(self._low.min())

    def amax(self) -> np.ndarray:
        """The range seen so far, shaped to broadcast against the tensor (a scalar without kept axes)."""
        if self._low is None:
            raise ValueError("no data collected")
        return np.maximum(np.maximum(-self._low, self._high), 0.0)


class HistogramCalibrator:
    """A histogram of |x| over [0, max] (``num_bins`` bins at first), for the percentile, mse and entropy
    methods (pytorch_quantization's ``HistogramCalibrator`` with its torch histogram path).

    A batch whose max lies beyond the last edge appends bins of the same width until it is covered (the
    earlier counts keep their bins), so memory is the histogram alone. ``skip_zeros`` leaves exact zeros
    out (ReLU outputs otherwise pile up in the first bin).
    """

    def __init__(self, num_bins: int = 2048, *, skip_zeros: bool = False):
        if num_bins < 2:
            raise ValueError("num_bins must be at least 2")
        self.num_bins = num_bins
        self.skip_zeros = skip_zeros
        self.hist: np.ndarray | None = None
        self.edges: np.ndarray | None = None

    def collect(self, x: np.ndarray) -> None:
        x = np.abs(np.asarray(x, dtype=np.float64)).reshape(-1)
        if self.skip_zeros:
            x = x[x != 0]
        top = float(x.max()) if x.size else 0.0
        if self.edges is None:
            self.edges = np.linspace(0.0, top if top > 0 else 1.0, self.num_bins + 1)
            self.hist = np.zeros(self.num_bins, dtype=np.int64)
        elif top > self.edges[-1]:
            width = self.edges[1] - self.edges[0]
            extra = int(np.ceil((top - self.edges[-1]) / width))
            self.edges = np.concatenate([self.edges, self.edges[-1] + width * np.arange(1, extra + 1)])
            self.hist = np.concatenate([self.hist, np.zeros(extra, dtype=np.int64)])
        counts, _ = np.histogram(x, bins=self.edges)
        self.hist += counts

    def _data(self) -> tuple[np.ndarray, np.ndarray]:
        if self.hist is None or self.hist.sum() == 0:
            raise ValueError("no data collected")
        return self.hist, self.edges

    def percentile(self, percentile: float) -> float:
        """The left edge of the bin where the cumulative count reaches ``percentile`` % (pytorch_quantization's
        choice; within one bin width of the data's own percentile)."""
        if not 0 < percentile <= 100:
            raise ValueError("percentile must be in (0, 100]")
        hist, edges = self._data()
        cdf = np.cumsum(hist) / hist.sum()
        return float(edges[min(int(np.searchsorted(cdf, percentile / 100)), len(hist) - 1)])

    def mse(self, bits: int, unsigned: bool, *, start_bin: int = 128, stride: int = 1) -> float:
        """The bin centre that, as amax, gives the smallest count-weighted squared error of fake-quantizing
        the bin centres (pytorch_quantization's ``mse``)."""
        hist, edges = self._data()
        centers = (edges[1:] + edges[:-1]) / 2
        max_bound = 2 ** bits - 1 if unsigned else 2 ** (bits - 1) - 1
        best, best_error = None, np.inf
        for i in range(min(start_bin, len(centers) - 1), len(centers), stride):
            amax = centers[i]
            fake = np.clip(np.rint(centers * (max_bound / amax)), 0 if unsigned else -max_bound, max_bound)
            error = np.mean((fake * (amax / max_bound) - centers) ** 2 * hist)
            if error < best_error:
                best, best_error = amax, error
        return float(best)

    def entropy(self, bits: int, unsigned: bool, *, start_bin: int = 128, stride: int = 1) -> float:
        """TensorRT's entropy calibration (Migacz, "8-bit Inference with TensorRT", GTC 2017), as
        pytorch_quantization computes it: for each candidate i, P = the first i bins with everything beyond
        folded into the last; Q = those i bins merged into 2^(b-1) (signed; 2^b unsigned) equal groups, each
        group's count spread evenly over its non-empty bins; the i with the smallest KL(P || Q) (the largest
        such i on a tie) gives amax = the right edge of bin i - 1. The first bin's count is replaced by the
        second's (pytorch_quantization does so: the zero spike of ReLU outputs)."""
        hist, edges = self._data()
        bins = hist.astype(np.float64).copy()
        bins[0] = bins[1]
        levels = 1 << (bits - 1 + int(unsigned))
        best_i, best = None, np.inf
        for i in range(min(start_bin, len(bins)), len(bins) + 1, stride):
            group = np.digitize(np.arange(i), np.linspace(0, i, levels + 1)) - 1
            nonzero = bins[:i] != 0
            sums = np.bincount(group[nonzero], weights=bins[:i][nonzero], minlength=levels)
            sizes = np.bincount(group[nonzero], minlength=levels)
            q = np.zeros(i)
            q[nonzero] = (sums / np.maximum(sizes, 1))[group[nonzero]]
            p = bins[:i].copy()
            p[-1] += bins[i:].sum()
            if q.sum() == 0:  # every bin below i empty: Q is undefined, the candidate is not one
                continue
            p, q = p / p.sum(), q / q.sum()
            mask = p > 0
            with np.errstate(divide="ignore"):
                divergence = float(np.sum(p[mask] * np.log(p[mask] / q[mask])))
            if divergence <= best:
                best_i, best = i, divergence
        return float(edges[best_i if best_i is not None else -1])  # no candidate: the whole range
