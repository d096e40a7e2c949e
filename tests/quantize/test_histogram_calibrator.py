"""HistogramCalibrator against independent references: NumPy's histogram and percentile, a brute-force
MSE search, and the entropy algorithm written out as in its published description:

Szymon Migacz, "8-bit Inference with TensorRT", NVIDIA GTC 2017 (slides 30-37): for i in 128..2048,
P = bins[0..i-1] with the outliers sum(bins[i..]) added to P[i-1]; Q = bins[0..i-1] quantized into 128
levels and expanded back to i bins (empty bins stay empty); normalise both; divergence[i] = KL(P || Q);
threshold from the i with the smallest divergence. Conventions that the slides leave open and that
pytorch_quantization fixes, used by both sides here: the i bins are split into levels with
``linspace(0, i, levels + 1)``; on equal divergence the largest i wins; the first bin's count is
replaced by the second's; amax is the right edge of bin i - 1 (the slides take the centre of bin i,
half a bin further).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from qonnx_tools.quantize import HistogramCalibrator


def _streamed(x: np.ndarray, batches: int, **kwargs) -> HistogramCalibrator:
    calibrator = HistogramCalibrator(**kwargs)
    for batch in np.array_split(x, batches):
        calibrator.collect(batch)
    return calibrator


@pytest.mark.parametrize("seed", range(3))
def test_streaming_keeps_the_counts_of_one_histogram(seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=30000) * np.repeat([0.5, 1.0, 3.0], 10000)  # later batches reach further: bins grow
    calibrator = _streamed(x, 3)
    assert len(calibrator.hist) > 2048
    widths = np.diff(calibrator.edges)
    np.testing.assert_allclose(widths, widths[0], rtol=1e-9)
    expected, _ = np.histogram(np.abs(x), bins=calibrator.edges)
    # equal but for a batch's maximum: NumPy counts a value on the last edge in the last bin, and once bins
    # are appended that edge opens the next bin, so each growth may leave one count a bin to the left
    moved = np.cumsum(calibrator.hist - expected)
    assert moved[-1] == 0 and np.all((moved == 0) | (moved == 1)) and np.count_nonzero(moved) <= 2


@pytest.mark.parametrize("percentile", [50.0, 99.0, 99.9, 99.99])
def test_percentile_is_within_a_bin_of_numpy(percentile):
    x = np.random.default_rng(1).laplace(size=100000)
    calibrator = _streamed(x, 5)
    width = calibrator.edges[1] - calibrator.edges[0]
    assert abs(calibrator.percentile(percentile) - np.percentile(np.abs(x), percentile)) <= width


def test_mse_matches_a_brute_force_search():
    x = np.random.default_rng(2).normal(size=50000)
    calibrator = _streamed(x, 2, num_bins=512)
    centers = (calibrator.edges[1:] + calibrator.edges[:-1]) / 2
    candidates = centers[128:]
    # every candidate at once: fake-quantize all bin centres (8-bit signed), weight by the counts
    scale = candidates[:, None] / 127
    fake = np.clip(np.rint(centers[None, :] / scale), -127, 127) * scale
    errors = ((fake - centers[None, :]) ** 2 * calibrator.hist[None, :]).mean(axis=1)
    assert calibrator.mse(8, False) == pytest.approx(candidates[np.argmin(errors)], rel=1e-12)


def _entropy_as_published(hist: np.ndarray, edges: np.ndarray, levels: int, start: int) -> float:
    bins = [float(c) for c in hist]
    bins[0] = bins[1]
    best_i, best = None, math.inf
    for i in range(start, len(bins) + 1):
        p = bins[:i]
        p[i - 1] += sum(bins[i:])
        bounds = np.linspace(0, i, levels + 1)
        q = [0.0] * i
        for level in range(levels):
            members = [j for j in range(i) if bounds[level] <= j < bounds[level + 1]]
            nonempty = [j for j in members if bins[j] != 0]
            for j in nonempty:
                q[j] = sum(bins[j] for j in members) / len(nonempty)
        sp, sq = sum(p), sum(q)
        # KL(P || Q); P > 0 where Q = 0 (an empty last bin that took the outliers) makes it infinite
        divergence = sum((a / sp) * math.log((a / sp) / (b / sq)) if b > 0 else math.inf
                         for a, b in zip(p, q) if a > 0)
        if divergence <= best:
            best_i, best = i, divergence
    return float(edges[best_i])


@pytest.mark.parametrize("seed, bits", [(3, 8), (4, 7)])
def test_entropy_matches_the_published_algorithm(seed, bits):
    x = np.random.default_rng(seed).standard_t(df=4, size=20000)  # heavy tails: clipping pays
    calibrator = _streamed(x, 2, num_bins=400)
    levels = 1 << (bits - 1)
    want = _entropy_as_published(calibrator.hist, calibrator.edges, levels, start=levels)
    assert calibrator.entropy(bits, False, start_bin=levels) == want
    assert want < np.abs(x).max()  # it clips the tail


def test_refusals():
    with pytest.raises(ValueError):
        HistogramCalibrator().percentile(99)
    with pytest.raises(ValueError):
        HistogramCalibrator(num_bins=1)
    calibrator = _streamed(np.arange(10.0), 1)
    with pytest.raises(ValueError):
        calibrator.percentile(0)
