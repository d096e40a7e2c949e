"""Structural tidying passes, thin wrappers of onnx_ir's common passes.

- ``remove-dead``: nodes whose outputs nobody uses, unused initializers, unused
  optional outputs and trailing empty inputs (RemoveUnusedNodesPass). Stale
  ``value_info`` needs no pass: onnx_ir keeps type information on the values
  themselves, drops entries for names that do not exist when loading, and writes
  only the values still in the graph when saving.
- ``dedupe-initializers``: initializers with equal dtype, shape and bytes become one
  (DeduplicateInitializersPass). Graph inputs and outputs are never merged. When
  merged initializers carried different datatype annotations, the first one's is
  kept (it describes the same values).
- ``unshare-initializers``: the inverse, for consumers that turn every initializer
  into a layer owned by one node (hls4ml removes a quantizer's parameter layer when
  it folds the quantizer, so a second quantizer sharing it loses its parameter).
- ``remove-static-inputs``: initializers stop being listed as graph inputs
  (RemoveInitializersFromInputsPass); Brevitas lists every weight as an input.
- ``sort``: stable topological sort of the graph, subgraphs and functions (TopologicalSortPass).
- ``tidy``: what every command that writes a model runs last (cleanup, convert,
  streamline, prepare), so that no output holds what qonnx's ``cleanup_model``,
  onnxsim or onnxslim would still remove: the ``TIDY_STEPS`` pipeline, then
  infer-shapes. It never folds quantizers and never renames graph inputs/outputs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import ClassVar

from qonnx_tools._ir import common_passes, ir
from qonnx_tools.passes.base import PassResult, QonnxPass, register_pass
from qonnx_tools.passes.pipeline import CompositePass

#: The tidy steps (a valid pipeline string), shared by ``tidy`` and ``cleanup``.
TIDY_STEPS = (
    "remove-static-inputs, "
    "fixpoint{steps=8}(remove-identity, remove-noop-arith, fold-constants, move-transpose-into-weight-quant, "
    "merge-reshapes, remove-dead), "
    "dedupe-initializers, remove-dead"
)


def _node_signature(model: ir.Model) -> list[tuple]:
    """What RemoveUnusedNodesPass may change on kept nodes without counting it."""
    signature = []
    graphs = list(model.graphs()) + list(model.functions.values())
    for graph in graphs:
        for node in graph:
            signature.append(
                (id(node), len(node.inputs), tuple(v.name for v in node.outputs), tuple(node.attributes))
            )
    return signature


@dataclass
class RemoveDead(QonnxPass):
    """Remove unused nodes, initializers and optional outputs (onnx_ir RemoveUnusedNodesPass)."""

    name: ClassVar[str] = "remove-dead"
    summary: ClassVar[str] = "remove nodes, initializers and optional outputs that nothing uses"

    def call(self, model: ir.Model) -> PassResult:
        before = _node_signature(model)
        result = common_passes.RemoveUnusedNodesPass()(model)
        # The onnx_ir pass counts removed nodes/initializers but not trimmed inputs/outputs.
        modified = bool(result.modified) or _node_signature(model) != before
        return PassResult(model, modified)


@dataclass
class DedupeInitializers(QonnxPass):
    """Merge initializers with identical dtype, shape and content (onnx_ir DeduplicateInitializersPass)."""

    name: ClassVar[str] = "dedupe-initializers"
    summary: ClassVar[str] = "merge initializers with identical dtype, shape and content (up to size_limit elements)"

    #: Initializers with more elements than this are not compared.
    size_limit: int = 1 << 20

    def call(self, model: ir.Model) -> PassResult:
        # The onnx_ir pass warns once per initializer that is a graph input or output
        # (every weight of a Brevitas export); skipping those is expected here.
        log = logging.getLogger("onnx_ir.passes.common.initializer_deduplication")
        level = log.level
        log.setLevel(logging.ERROR)
        try:
            result = common_passes.DeduplicateInitializersPass(size_limit=self.size_limit)(model)
        finally:
            log.setLevel(level)
        return PassResult(model, bool(result.modified))


@dataclass
class UnshareInitializers(QonnxPass):
    """Give every extra consumer of a shared initializer its own copy (values unchanged)."""

    name: ClassVar[str] = "unshare-initializers"
    summary: ClassVar[str] = (
        "one initializer per consumer: a shared initializer is copied for every extra use (for hls4ml)"
    )

    def call(self, model: ir.Model) -> PassResult:
        from qonnx_tools.passes._rewrite import all_value_names, unique_name

        graph = model.graph
        used = all_value_names(model)
        modified = False
        for value in list(graph.initializers.values()):
            for node, index in list(value.uses())[1:]:
                copy = ir.Value(
                    name=unique_name(value.name, used), shape=value.shape, type=value.type,
                    const_value=value.const_value,
                )
                copy.meta.update(value.meta)
                graph.register_initializer(copy)
                node.replace_input_with(index, copy)
                modified = True
        return PassResult(model, modified)


@dataclass
class RemoveStaticInputs(QonnxPass):
    """Initializers listed as graph inputs stop being graph inputs (onnx_ir RemoveInitializersFromInputsPass)."""

    name: ClassVar[str] = "remove-static-inputs"
    summary: ClassVar[str] = "stop listing initializers as graph inputs (they become fixed weights)"

    def call(self, model: ir.Model) -> PassResult:
        result = common_passes.RemoveInitializersFromInputsPass()(model)
        return PassResult(model, bool(result.modified))


@dataclass
class Sort(QonnxPass):
    """Stable topological sort of graphs and functions (onnx_ir TopologicalSortPass)."""

    name: ClassVar[str] = "sort"
    summary: ClassVar[str] = "sort nodes topologically (stable: independent nodes keep their order)"

    def call(self, model: ir.Model) -> PassResult:
        result = common_passes.TopologicalSortPass()(model)
        return PassResult(model, bool(result.modified))


@dataclass
class Tidy(CompositePass):
    """The tidy steps every writing command ends with (see the module docstring)."""

    name: ClassVar[str] = "tidy"
    summary: ClassVar[str] = (
        "drop static inputs, identities, no-op arithmetic, constant subgraphs, weight Transposes, "
        "reshape chains, dead code and duplicate initializers; then infer shapes"
    )

    def pipeline_text(self) -> str:
        return f"{TIDY_STEPS}, infer-shapes"
