"""What to quantize a tensor to, and the QONNX Quant parameters a calibrated range gives.

The conventions are pytorch_quantization's (``QuantDescriptor``, ``tensor_quant``): a symmetric range
``[-amax, amax]`` mapped onto ``[-(2^(b-1) - 1), 2^(b-1) - 1]`` (signed; the narrow range, so zero is
exact and the range symmetric) or ``[0, amax]`` onto ``[0, 2^b - 1]`` (unsigned), zero point 0,
round half to even. pytorch_quantization multiplies by ``max_bound / amax``; a QONNX Quant divides by
its scale ``amax / max_bound``. The two agree except where ``x * (max_bound / amax)`` and
``x / (amax / max_bound)`` round to float32 on opposite sides of a .5 (tests/quantize measure how
often). ``axis`` names the axes *kept* (one amax per index along them), as ``QuantDescriptor.axis`` does.
An amax of 0 (an all-zero channel) gives scale 1, as pytorch_quantization does, so the codes are 0.
``pow2`` rounds each scale up to a power of two (fixed point for FINN and DPUs; up, so nothing that
fitted is clipped). ``narrow`` (signed only) drops the code -2^(b-1): pytorch_quantization's
``tensor_quant`` default and Brevitas' for weights (a symmetric range absorbs sign changes); the scale
is the same either way. One signed bit is a bipolar quantizer (QONNX ``BipolarQuant``: y = ±scale),
whose "amax" is the scale itself (``quantize`` calibrates it as the mean |x|, XNOR-Net's L2-optimal
binary scale).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class QuantSpec:
    """How to quantize one tensor: bit width, signedness, kept axes, power-of-two scales."""

    bits: int = 8
    unsigned: bool = False
    axis: tuple[int, ...] | None = None
    pow2: bool = False
    narrow: bool = True

    def __post_init__(self):
        if not (isinstance(self.bits, int) and 1 <= self.bits <= 32):
            raise ValueError(f"bits={self.bits!r}: a whole number from 1 to 32")

    @property
    def bipolar(self) -> bool:
        """One signed bit: a BipolarQuant (±scale), not an integer quantizer."""
        return self.bits == 1 and not self.unsigned

    @property
    def max_bound(self) -> int:
        """The largest code: 2^b - 1 unsigned, 2^(b-1) - 1 signed."""
        return 2 ** self.bits - 1 if self.unsigned else 2 ** (self.bits - 1) - 1


@dataclass(frozen=True)
class QuantParams:
    """The inputs and attributes of a QONNX Quant node: y = scale * clip(round(x / scale), lo, hi)."""

    scale: np.ndarray
    zero_point: np.ndarray
    bitwidth: np.ndarray
    signed: int
    narrow: int
    rounding_mode: str = "ROUND"


def quant_params(amax: np.ndarray | float, spec: QuantSpec) -> QuantParams:
    """The Quant parameters of ``spec`` for a calibrated ``amax`` (a scalar, or one value per kept index,
    shaped to broadcast against the tensor)."""
    if spec.bipolar:
        raise ValueError("a bipolar quantizer has no integer range: its scale is the calibrated value itself")
    amax = np.asarray(amax, dtype=np.float64)
    if np.any(amax < 0) or not np.all(np.isfinite(amax)):
        raise ValueError("amax must be finite and non-negative")
    scale = np.where(amax > 0, amax / spec.max_bound, 1.0)
    if spec.pow2:
        scale = 2.0 ** np.ceil(np.log2(scale))
    return QuantParams(
        scale=scale.astype(np.float32), zero_point=np.zeros((), np.float32),
        bitwidth=np.asarray(spec.bits, np.float32), signed=0 if spec.unsigned else 1,
        narrow=int(spec.narrow and not spec.unsigned),
    )
