"""infer-shapes: the pass over :mod:`qonnx_tools.shape_inference` (computed shapes win over stale
annotations; see that module for the rules)."""

from __future__ import annotations

from dataclasses import dataclass

from qonnx_tools._ir import ir
from qonnx_tools.passes.base import PassResult, QonnxPass
from qonnx_tools.shape_inference import ShapeConflictWarning, infer_shapes, unknown_shapes


@dataclass
class InferShapes(QonnxPass, name="infer-shapes"):
    """infer element types and shapes node by node (works on >2 GB models)

    ``strict``: raise (BadInputError / UnsupportedOpError) when a node cannot be
    inferred or contradicts a declared shape, instead of leaving values unknown.
    """

    strict: bool = False

    def __post_init__(self) -> None:
        #: One line per node whose inference failed or has no inference (last run).
        self.failures: list[str] = []

    def call(self, model: ir.Model) -> PassResult:
        changed, self.failures = infer_shapes(model, strict=self.strict)
        return PassResult(model, changed)


__all__ = ["InferShapes", "ShapeConflictWarning", "unknown_shapes"]
