"""Passes over the IR: registry, pipelines (strings or lists), and the built-in passes.

Use ``run_passes(model, "infer-shapes,fold-constants,cleanup")`` or build a
``Pipeline`` from pass instances; ``registered_passes()`` lists what exists.
"""

from __future__ import annotations

from qonnx_tools._ir import ir
from qonnx_tools.passes.base import PassResult, QonnxPass, get_pass_class, make_pass, register_pass, registered_passes
from qonnx_tools.passes.pipeline import Fixpoint, FixpointNotReached, PassRecord, Pipeline, parse_pipeline


def run_passes(model: ir.Model, pipeline: str | Pipeline, **options) -> PassResult:
    """Run a pipeline (string or Pipeline) on ``model`` in place."""
    if isinstance(pipeline, str):
        pipeline = parse_pipeline(pipeline, **options)
    return pipeline(model)


__all__ = [
    "QonnxPass", "PassResult", "register_pass", "get_pass_class", "make_pass", "registered_passes",
    "Pipeline", "Fixpoint", "FixpointNotReached", "PassRecord", "parse_pipeline", "run_passes",
]
