"""Layer-by-layer check of a streamlined model against the model it came from.

Why: a deep quantized network is chaotic at float32 precision. Streamlining moves
scales past convolutions, so the float32 rounding of each pre-activation changes; an
element that sits within float32 noise of a rounding tie can then land one level
the other way, and later layers amplify that one step into a different top-1 class.
On ``imagenet_mobilenet_v1_4b`` the *original* graph evaluated in float32 and in
float64 disagrees on the top-1 class for 12-14 of 100 random inputs (depending on
summation order), so an end-to-end comparison cannot tell such noise from a wrong
threshold. This check can.

How: every MultiThreshold made from an activation quantizer carries the name of that
quantizer's output (``frontend.QUANTIZER_KEY``) and outputs its integer level. The
original is run once; the streamlined model is then run with every traced
MultiThreshold's output *substituted* by the original's level (``Executor.run(...,
substitute=...)``), so each layer computes from exactly the original's input to that
layer. A layer agrees when its own levels equal the original's, except for elements
that are one level off *and* whose pre-activation in the original lies within
``tie_tol`` quantization steps of a rounding boundary: nudging that pre-activation by
``tie_tol`` steps (through the original quantizer's own kernel) yields the
streamlined level. The graph outputs of the substituted run are compared too, which
covers the float tail after the last MultiThreshold.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

from qonnx_tools._ir import ir
from qonnx_tools.compare import OutputComparison, compare_outputs
from qonnx_tools.constants import constant_array
from qonnx_tools.decline import Decline
from qonnx_tools.domains import QONNX
from qonnx_tools.executor import Executor
from qonnx_tools.executor.engine import bind_kernel
from qonnx_tools.streamline._graph import is_mt, is_op
from qonnx_tools.streamline.frontend import QUANTIZER_KEY

#: Default closeness to a rounding boundary (in quantization steps) that float32 noise explains.
TIE_TOLERANCE = 1e-4


@dataclass(frozen=True)
class LayerAgreement:
    """One traced MultiThreshold, run on the original's own input to its layer."""

    multithreshold: str  # node name in the streamlined model
    quantizer: str  # output name of the activation quantizer it replaced, in the original
    elements: int
    differing: int  # elements whose level differs from the original's
    near_ties: int  # of those: one level off, pre-activation within tie_tol steps of a boundary
    max_levels_off: float

    @property
    def ok(self) -> bool:
        return self.differing == self.near_ties


@dataclass
class LayerwiseResult:
    """Per-layer agreement, MultiThresholds that could not be traced, and the outputs."""

    layers: list[LayerAgreement] = field(default_factory=list)
    untraced: list[str] = field(default_factory=list)  # "node: reason"
    outputs: list[OutputComparison] = field(default_factory=list)
    tie_tol: float = TIE_TOLERANCE

    @property
    def ok(self) -> bool:
        return all(layer.ok for layer in self.layers) and all(out.ok for out in self.outputs)

    def summary(self) -> str:
        """One line: how many layers were checked and what differed."""
        elements = sum(layer.elements for layer in self.layers)
        differing = sum(layer.differing for layer in self.layers)
        ties = sum(layer.near_ties for layer in self.layers)
        bad = [layer for layer in self.layers if not layer.ok]
        text = (
            f"{len(self.layers)} MultiThreshold layers on the original's own inputs"
            f"{f' ({len(self.untraced)} untraced)' if self.untraced else ''}: "
            f"{differing} of {elements} levels differ, {ties} of them near-ties (one level, within "
            f"{self.tie_tol:g} steps of a rounding boundary)"
        )
        if bad:
            worst = max(bad, key=lambda layer: layer.differing - layer.near_ties)
            text += f"; first real difference at {bad[0].multithreshold!r} (worst {worst.multithreshold!r})"
        off = [out.name for out in self.outputs if not out.ok]
        if off:
            text += f"; outputs {off} differ after the last layer"
        return text


def compare_layers(
    original: ir.Model,
    streamlined: ir.Model,
    feeds: Mapping[str, np.ndarray],
    *,
    tie_tol: float = TIE_TOLERANCE,
    atol: float = 1e-5,
    rtol: float = 1e-5,
) -> LayerwiseResult:
    """Check every traced MultiThreshold of ``streamlined`` on the original's own layer inputs.

    Both models run once on ``feeds`` keeping every intermediate tensor (memory: all
    activations of both graphs for that batch), so pass one batch at a time.
    """
    reference = Executor(original).run(feeds, keep_intermediates=True)
    producers = {out.name: node for node in original.graph for out in node.outputs if out.name}
    result = LayerwiseResult(tie_tol=tie_tol)
    expected: dict[str, tuple[ir.Node, ir.Node, np.ndarray]] = {}
    for node in streamlined.graph:
        if not is_mt(node):
            continue
        traced = _expected_levels(node, producers, reference)
        if isinstance(traced, Decline):
            result.untraced.append(f"{node.name}: {traced.reason}")
            continue
        quantizer, levels = traced
        expected[node.outputs[0].name] = (node, quantizer, levels)
    substitute = {name: levels for name, (_, _, levels) in expected.items()}
    got = Executor(streamlined).run(feeds, keep_intermediates=True, substitute=substitute)
    for name, (node, quantizer, levels) in expected.items():
        result.layers.append(_agreement(node, quantizer, levels, got[name], reference, original, tie_tol))
    pairs = list(zip(original.graph.outputs, streamlined.graph.outputs))  # outputs keep their order
    ref_out = {a.name: reference[a.name] for a, _ in pairs}
    got_out = {a.name: got[b.name] for a, b in pairs}
    result.outputs = compare_outputs(ref_out, got_out, atol=atol, rtol=rtol)
    return result


def _expected_levels(mt: ir.Node, producers, reference) -> tuple[ir.Node, np.ndarray] | Decline:
    """(the original quantizer, its output as integer levels), or why the MultiThreshold cannot be traced."""
    source = mt.metadata_props.get(QUANTIZER_KEY)
    if source is None:
        return Decline("not made from an activation quantizer")
    quantizer = producers.get(source)
    if quantizer is None or source not in reference:
        return Decline(f"quantizer output {source!r} not found in the original")
    step = _level_step(quantizer, reference)
    if step is None:
        return Decline(f"quantizer of {source!r} has no constant step")
    levels = np.round(reference[source] / step).astype(np.float32)
    if mt.outputs[0].shape is not None and levels.ndim != len(mt.outputs[0].shape):
        return Decline(f"rank differs from the original's {source!r}")
    return quantizer, levels


def _level_step(quantizer: ir.Node, values: Mapping[str, np.ndarray]) -> np.ndarray | None:
    """Output value of one level: the scale (IntQuant/Quant/BipolarQuant), Trunc v2's out_scale."""
    if is_op(quantizer, "IntQuant", QONNX) or is_op(quantizer, "BipolarQuant", QONNX):
        index = 1
    elif is_op(quantizer, "Trunc", QONNX) and len(quantizer.inputs) >= 6:
        index = 4
    else:
        return None
    return _array(quantizer.inputs[index], values)


def _array(value: ir.Value | None, values: Mapping[str, np.ndarray]) -> np.ndarray | None:
    if value is None:
        return None
    if value.name in values:
        return np.asarray(values[value.name])
    return constant_array(value)


def _agreement(mt, quantizer, levels, got, reference, original, tie_tol) -> LayerAgreement:
    got = np.asarray(got, dtype=np.float32)
    differing = got != levels
    count = int(differing.sum())
    ties = 0
    if count:
        ties = int((differing & _near_tie_reaches(quantizer, got, reference, original, tie_tol)).sum())
    off = float(np.abs(got - levels).max()) if got.size else 0.0
    return LayerAgreement(mt.name or "", quantizer.outputs[0].name, int(got.size), count, ties, off)


def _near_tie_reaches(quantizer, got, reference, original, tie_tol) -> np.ndarray:
    """Where nudging the original pre-activation by +-tie_tol steps gives the level ``got``."""
    kernel, ctx = bind_kernel(quantizer, original)
    args = [_array(v, reference) for v in quantizer.inputs]
    step = _level_step(quantizer, reference)
    pre = args[0].astype(np.float32)
    delta = np.abs(np.broadcast_to(step, pre.shape)).astype(np.float32) * np.float32(tie_tol)
    reached = np.zeros(got.shape, dtype=bool)
    with np.errstate(all="ignore"):
        for nudged in (pre + delta, pre - delta):
            out = kernel(ctx, nudged, *args[1:])
            out = out[0] if isinstance(out, (list, tuple)) else out
            reached |= np.round(np.asarray(out) / step) == got  # a nudge this small moves one level at most
    return reached
