"""sanitize-names: nodes and values (graph inputs/outputs included) whose name is not
a C identifier, or is reserved, get a unique C identifier (``c1.weight`` ->
``c1_weight``, ``0`` -> ``v0``); hls4ml turns names into C++ variables, mangles
some of them inconsistently, and refuses a layer called ``input``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from qonnx_tools._ir import ir
from qonnx_tools.passes.base import PassResult, QonnxPass

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def c_identifier(name: str) -> str:
    """``name`` with every character outside [A-Za-z0-9_] replaced by ``_``, prefixed ``v`` if it starts with a digit."""
    clean = re.sub(r"[^A-Za-z0-9_]", "_", name) or "v"
    return clean if not clean[0].isdigit() else "v" + clean


def is_c_identifier(name: str | None) -> bool:
    return bool(name) and _IDENTIFIER.fullmatch(name) is not None


@dataclass
class SanitizeNames(QonnxPass, name="sanitize-names"):
    """rename nodes and values (graph inputs/outputs too) that are not C identifiers, or are in reserved
    (comma-separated), to unique C identifiers (for hls4ml, which uses names as C++ variables)"""

    #: Comma-separated names to avoid (prepare's hls4ml pipeline passes hls4ml's reserved names).
    reserved: str = ""

    def call(self, model: ir.Model) -> PassResult:
        from qonnx_tools.passes._rewrite import all_value_names, unique_name

        reserved = {n.strip() for n in self.reserved.split(",") if n.strip()}
        used = all_value_names(model) | {n.name for g in model.graphs() for n in g if n.name} | reserved
        modified = False
        for graph in model.graphs():
            values = [*graph.inputs, *graph.initializers.values(), *(v for n in graph for v in n.outputs)]
            for item in [*graph, *values]:
                if item.name and (item.name in reserved or not is_c_identifier(item.name)):
                    item.name = unique_name(c_identifier(item.name), used)
                    modified = True
        return PassResult(model, modified)
