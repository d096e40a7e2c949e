"""cleanup: the standard tidy-up pipeline as one registered pass.

Runs::

    remove-static-inputs, pad-attrs-to-inputs, sort, infer-shapes,
    fixpoint{steps=8}(remove-identity, remove-noop-arith, fold-constants, remove-dead),
    dedupe-initializers, remove-dead, infer-shapes, infer-datatypes, name-nodes

``pad-attrs-to-inputs`` only touches attribute forms that are invalid at the
model's opset, so it changes nothing on a valid model but lets shape inference
run on hand-edited ones. The pass is idempotent: cleaning a cleaned model
reports ``modified=False`` and leaves it as it was. ``last_records`` holds the
per-pass records (name, seconds, modified) of the last run, for the CLI.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from qonnx_tools._ir import ir
from qonnx_tools.passes.base import PassResult, QonnxPass, register_pass
from qonnx_tools.passes.pipeline import PassRecord, Pipeline, parse_pipeline

#: The default cleanup pipeline (a valid pipeline string).
CLEANUP_PIPELINE = (
    "remove-static-inputs, pad-attrs-to-inputs, sort, infer-shapes, "
    "fixpoint{steps=8}(remove-identity, remove-noop-arith, fold-constants, remove-dead), "
    "dedupe-initializers, remove-dead, infer-shapes, infer-datatypes, name-nodes"
)


def cleanup_pipeline_text(fold_quantizers: bool = False) -> str:
    """The cleanup pipeline string, with fold-constants' quantizer option applied."""
    if fold_quantizers:
        return CLEANUP_PIPELINE.replace("fold-constants,", "fold-constants{fold_quantizers=true},")
    return CLEANUP_PIPELINE


@register_pass
@dataclass
class Cleanup(QonnxPass):
    """Standard tidy-up: static inputs, identities, no-op arithmetic, constants, dead code, names."""

    name: ClassVar[str] = "cleanup"
    summary: ClassVar[str] = (
        "tidy a model: drop static inputs, fold constants (not quantizers), remove identities, "
        "no-op arithmetic and dead code, dedupe initializers, infer shapes/datatypes, name nodes"
    )

    fold_quantizers: bool = False
    last_records: list[PassRecord] = field(default_factory=list, init=False, repr=False, compare=False)

    def pipeline(self) -> Pipeline:
        return parse_pipeline(cleanup_pipeline_text(self.fold_quantizers))

    def call(self, model: ir.Model) -> PassResult:
        pipeline = self.pipeline()
        try:
            result = pipeline(model)
        finally:
            self.last_records = list(pipeline.records)
        return PassResult(model, bool(result.modified))
