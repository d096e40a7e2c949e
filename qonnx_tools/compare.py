"""Comparing two sets of outputs: absolute, relative and in quantization steps."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Mapping

import numpy as np

from qonnx_tools._ir import ir
from qonnx_tools.constants import constant_array
from qonnx_tools.domains import QONNX, STANDARD
from qonnx_tools.errors import BadInputError

#: Ops through which a quantized output keeps its (scalar) quantization step.
_STEP_PRESERVING = {"Reshape", "Flatten", "Identity", "Transpose", "Squeeze", "Unsqueeze", "MaxPool", "Relu"}


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
    atol: float = 1e-5,
    rtol: float = 1e-5,
    steps: Mapping[str, np.ndarray] | None = None,
    max_steps: float | None = None,
) -> list[OutputComparison]:
    """Compare outputs by name (reference order). ``ok`` is ``|a-b| <= atol + rtol*|ref|``
    everywhere, or, when ``max_steps`` is given and the output's step is known, at most
    that many quantization steps."""
    result = []
    for name, ref in reference.items():
        if name not in candidate:
            raise BadInputError(f"output {name!r} is missing from the compared run")
        ref = np.asarray(ref)
        got = np.asarray(candidate[name])
        if ref.shape != got.shape:
            raise BadInputError(f"output {name!r}: shape {got.shape} differs from reference {ref.shape}")
        result.append(_compare_one(name, ref, got, atol, rtol, None if steps is None else steps.get(name), max_steps))
    return result


def _compare_one(name, ref, got, atol, rtol, step, max_steps) -> OutputComparison:
    if ref.dtype.kind in "fc" or got.dtype.kind in "fc":
        diff = np.abs(ref.astype(np.float64) - got.astype(np.float64))
    else:
        diff = np.abs(ref.astype(np.int64) - got.astype(np.int64)).astype(np.float64)
    diff = np.where(np.isnan(diff) & np.isnan(ref.astype(np.float64)) & np.isnan(got.astype(np.float64)), 0.0, diff)
    scale = np.abs(ref.astype(np.float64))
    max_abs = float(diff.max()) if diff.size else 0.0
    max_rel = float((diff / np.maximum(scale, np.finfo(np.float64).tiny)).max()) if diff.size else 0.0
    pct_exact = 100.0 * float((diff == 0).mean()) if diff.size else 100.0
    in_steps = None
    if step is not None and diff.size:
        in_steps = float((diff / np.abs(np.broadcast_to(step, diff.shape))).max())
    if max_steps is not None and in_steps is not None:
        ok = in_steps <= max_steps + 1e-6
    else:
        ok = bool(np.all(diff <= atol + rtol * scale))
    return OutputComparison(name, tuple(ref.shape), max_abs, max_rel, in_steps, pct_exact, ok)


def output_steps(model: ir.Model) -> dict[str, np.ndarray]:
    """Quantization step of each graph output produced by a quantizer (through data movement)."""
    steps = {}
    for output in model.graph.outputs:
        step = _step_of(output)
        if step is not None:
            steps[output.name] = step
    return steps


def _step_of(value: ir.Value, depth: int = 0) -> np.ndarray | None:
    node = value.producer()
    if node is None or depth > 8:
        return None
    if node.domain == QONNX and node.op_type in ("IntQuant", "Quant", "BipolarQuant"):
        scale = constant_array(node.inputs[1])
        if scale is None:
            return None
        return scale * (2.0 if node.op_type == "BipolarQuant" else 1.0)
    if node.domain == QONNX and node.op_type == "MultiThreshold":
        attr = node.attributes.get("out_scale")
        return np.asarray(attr.value if attr is not None else 1.0, dtype=np.float64)
    if node.domain == STANDARD and node.op_type == "DequantizeLinear":
        scale = constant_array(node.inputs[1])
        return scale if scale is not None and scale.size == 1 else None
    if node.domain == STANDARD and node.op_type in _STEP_PRESERVING and node.inputs and node.inputs[0] is not None:
        step = _step_of(node.inputs[0], depth + 1)
        return step if step is not None and np.size(step) == 1 else None
    return None
