"""cleanup: the standard tidy-up pipeline as one registered pass.

Runs::

    pad-attrs-to-inputs, sort, infer-shapes, <tidy>, infer-shapes, infer-datatypes, name-nodes

where ``<tidy>`` is the ``tidy`` pass's steps (passes/tidy.py): static inputs
dropped, identities, no-op arithmetic, constants (``Shape`` of static shapes
included), weight-quantizer Transposes and reshape chains folded, dead code and
duplicate initializers removed. The result holds nothing that qonnx's
``cleanup_model``, onnxsim or onnxslim would still remove (tested against each
of them on the shared corpus, tests/consumers).

``pad-attrs-to-inputs`` only touches attribute forms that are invalid at the
model's opset, so it changes nothing on a valid model but lets shape inference
run on hand-edited ones. The pass is idempotent: cleaning a cleaned model
reports ``modified=False`` and leaves it as it was. ``last_records`` holds the
per-pass records (name, seconds, modified) of the last run, for the CLI.
"""

from __future__ import annotations

from dataclasses import dataclass

from qonnx_tools.passes.pipeline import CompositePass
from qonnx_tools.passes.tidy import TIDY_STEPS

#: The default cleanup pipeline (a valid pipeline string).
CLEANUP_PIPELINE = f"pad-attrs-to-inputs, sort, infer-shapes, {TIDY_STEPS}, infer-shapes, infer-datatypes, name-nodes"


def cleanup_pipeline_text(fold_quantizers: bool = False) -> str:
    """The cleanup pipeline string, with fold-constants' quantizer option applied."""
    if fold_quantizers:
        return CLEANUP_PIPELINE.replace("fold-constants,", "fold-constants{fold_quantizers=true},")
    return CLEANUP_PIPELINE


@dataclass
class Cleanup(CompositePass, name="cleanup"):
    """tidy a model: drop static inputs, fold constants (not quantizers), remove identities, no-op arithmetic
    and dead code, dedupe initializers, infer shapes/datatypes, name nodes"""

    fold_quantizers: bool = False

    def pipeline_text(self) -> str:
        return cleanup_pipeline_text(self.fold_quantizers)
