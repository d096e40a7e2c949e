"""Comparing two sets of outputs by name: what per-pass checks (``Pipeline(verify_each=True)``) and the
streamline layer check use. The rule, its defaults and the step definition live in ``qonnx_tools.verify``;
this module only keeps the small ``OutputComparison`` record those callers read."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Mapping

import numpy as np

from qonnx_tools.errors import BadInputError
from qonnx_tools.verify import ATOL, RTOL, Tolerance, compare, output_steps

__all__ = ["OutputComparison", "compare_outputs", "output_steps"]


@dataclass
class OutputComparison:
    """How one output of a candidate run differs from the reference run."""

    name: str
    shape: tuple[int, ...]
    max_abs: float
    max_rel: float
    max_steps: float | None  # largest difference in quantization steps (None: output not quantized)
    pct_exact: float
    ok: bool

    def to_dict(self) -> dict:
        return asdict(self)


def compare_outputs(
    reference: Mapping[str, np.ndarray],
    candidate: Mapping[str, np.ndarray],
    *,
    atol: float = ATOL,
    rtol: float = RTOL,
    steps: Mapping[str, np.ndarray] | None = None,
) -> list[OutputComparison]:
    """Compare outputs by name (reference order) with ``qonnx_tools.verify``'s rule at ``atol``/``rtol``
    and no step accepted: ``ok`` when exact or, for float outputs, within ``atol + rtol*|ref|``."""
    for name in reference:
        if name not in candidate:
            raise BadInputError(f"output {name!r} is missing from the compared run")
    report = compare(reference, candidate, steps=steps, tolerance=Tolerance(atol=atol, rtol=rtol, max_steps=0.0))
    return [
        OutputComparison(o.name, o.shape, o.max_abs, o.max_rel, o.max_steps, 100.0 - o.pct_differing, o.ok)
        for o in report.outputs
    ]
