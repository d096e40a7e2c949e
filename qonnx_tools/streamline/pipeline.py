"""``streamline``: the front end, a bounded fixpoint of the streamlining rules, fresh datatypes.

Order (the pipeline string is ``streamline_pipeline_text()``):

1. ``qonnx-to-finn`` (unless ``frontend=false``): integer weights, MultiThreshold activations.
2. ``fixpoint{steps=N}(...)`` of the rules. Absorbing into MultiThresholds comes first
   in every round, so a MultiThreshold eats the float ops next to it one by one,
   exactly, before anything reassociates them; then signs go into weights, scales
   move towards the outputs (past MatMul/Conv/pools/reshapes/joins), Adds move past
   Muls and chains collapse. Each round ends with constant folding, dead-code removal
   and shape inference so that the next round sees a tidy graph.
3. ``infer-datatypes`` (annotations recomputed from scratch), ``round-thresholds``
   (integer thresholds for integer-typed inputs), the ``tidy`` pass every writing
   command ends with, and ``infer-datatypes`` again, so no annotation is stale.

``streamline_report(model)`` then lists what is still not integer.
"""

from __future__ import annotations

from dataclasses import dataclass

from qonnx_tools._ir import ir
from qonnx_tools.passes.pipeline import CompositePass, Pipeline

#: Rules run in every fixpoint round, in this order.
STREAMLINE_RULES = (
    "absorb-into-multithreshold, factor-out-mul-sign{require_absorbable=true}, absorb-sign-mul-into-linear, "
    "move-mul-past-linear, move-add-past-linear, move-past-maxpool, move-past-reshape, move-scale-past-join, "
    "move-scale-past-split, absorb-into-multithreshold, move-add-past-mul, collapse-repeated-ops, "
    "remove-noop-arith, fold-constants, remove-dead, infer-shapes"
)

DEFAULT_STEPS = 12


def streamline_pipeline_text(max_bits: int = 8, steps: int = DEFAULT_STEPS, frontend: bool = True) -> str:
    parts = []
    if frontend:
        parts.append(f"qonnx-to-finn{{max_bits={max_bits}}}")
    parts.append(f"fixpoint{{steps={steps}}}({STREAMLINE_RULES})")
    parts.append(
        "infer-datatypes, round-thresholds, tidy, sort, infer-datatypes, name-nodes"
    )
    return ", ".join(parts)


@dataclass
class Streamline(CompositePass, name="streamline"):
    """FINN-style streamlining: front end (integer weights, MultiThreshold activations), bounded fixpoint of
    move/absorb/collapse rules, re-inferred datatypes and integer thresholds"""

    max_bits: int = 8
    steps: int = DEFAULT_STEPS
    frontend: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()  # declined: front-end refusals; what remains non-integer: streamline_report()
        self.notes: list[str] = []

    def pipeline_text(self) -> str:
        return streamline_pipeline_text(self.max_bits, self.steps, self.frontend)

    def collect(self, pipeline: Pipeline) -> None:
        front = [p for p in pipeline.passes if getattr(p, "name", "") == "qonnx-to-finn"]
        self.declined.extend(line for p in front for line in p.declined)
        self.notes = [line for p in front for line in p.notes]


def streamline(model: ir.Model, *, max_bits: int = 8, steps: int = DEFAULT_STEPS) -> Streamline:
    """Streamline ``model`` in place; returns the pass (``declined``, ``last_records``)."""
    pass_ = Streamline(max_bits=max_bits, steps=steps)
    pass_(model)
    return pass_


__all__ = ["Streamline", "streamline", "streamline_pipeline_text", "STREAMLINE_RULES"]
