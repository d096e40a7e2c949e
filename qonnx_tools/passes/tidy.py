"""tidy: what every command that writes a model runs last (cleanup, convert,
streamline, prepare), so that no output holds what qonnx's ``cleanup_model``,
onnxsim or onnxslim would still remove: the ``TIDY_STEPS`` pipeline, then
infer-shapes. It never folds quantizers and never renames graph inputs/outputs.

The steps are passes of their own (one module each): remove-static-inputs, then
a bounded fixpoint of remove-identity, remove-noop-arith, fold-constants,
move-transpose-into-weight-quant, merge-reshapes and remove-dead, then
dedupe-initializers and remove-dead.
"""

from __future__ import annotations

from dataclasses import dataclass

from qonnx_tools.passes.pipeline import CompositePass

#: The tidy steps (a valid pipeline string), shared by ``tidy`` and ``cleanup``.
TIDY_STEPS = (
    "remove-static-inputs, "
    "fixpoint{steps=8}(remove-identity, remove-noop-arith, fold-constants, move-transpose-into-weight-quant, "
    "merge-reshapes, remove-dead), "
    "dedupe-initializers, remove-dead"
)


@dataclass
class Tidy(CompositePass, name="tidy"):
    """drop static inputs, identities, no-op arithmetic, constant subgraphs, weight Transposes, reshape chains,
    dead code and duplicate initializers; then infer shapes"""

    def pipeline_text(self) -> str:
        return f"{TIDY_STEPS}, infer-shapes"
