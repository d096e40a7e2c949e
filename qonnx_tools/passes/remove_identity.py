"""remove-identity: remove ``Identity`` (onnx_ir's IdentityEliminationPass), inference-mode
``Dropout`` whose mask output is unused, and ``Cast`` to the type its input already has (skl2onnx
writes ``Cast(to=FLOAT)`` on a float input; FINN and hls4ml have no layer for it).

When the removed node's output is a graph output, its name survives: the kept
value is renamed to it. A node is kept when that is impossible (the kept value
is a graph input, an initializer or another graph output).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qonnx_tools._ir import common_passes, ir
from qonnx_tools.constants import constant_array
from qonnx_tools.domains import STANDARD, canonical_domain, opset_of
from qonnx_tools.passes._rewrite import bypass, can_bypass
from qonnx_tools.passes.base import PassResult, QonnxPass

_HIDDEN_IDENTITY = "Identity::kept-by-remove-identity"


def _standard(node: ir.Node, op_type: str) -> bool:
    return node.op_type == op_type and canonical_domain(node.domain) == STANDARD


@dataclass
class RemoveIdentity(QonnxPass, name="remove-identity"):
    """remove Identity, inference-mode Dropout (unused mask) and Cast to its input's own type; graph output
    names kept"""

    def call(self, model: ir.Model) -> PassResult:
        modified = self._remove_identities(model)
        modified |= self._remove_dropouts(model)
        modified |= self._remove_noop_casts(model)
        return PassResult(model, modified)

    @staticmethod
    def _remove_noop_casts(model: ir.Model) -> bool:
        modified = False
        for node in list(ir.traversal.RecursiveGraphIterator(model.graph)):
            if not _standard(node, "Cast") or not node.inputs or node.inputs[0] is None:
                continue
            source, to = node.inputs[0].dtype, node.attributes.get_int("to")
            if source is None or to is None or int(source) != to:
                continue  # unknown input type, or a real conversion
            modified |= bypass(node, node.inputs[0], node.outputs[0])
        return modified

    @staticmethod
    def _remove_identities(model: ir.Model) -> bool:
        # onnx_ir's pass renames the input to the output's name when the output is a
        # graph output; if the input is a graph output too, that renames an output
        # of the model. Hide those nodes from it (they must stay) while it runs.
        hidden = [
            node
            for node in ir.traversal.RecursiveGraphIterator(model.graph)
            if _standard(node, "Identity")
            and len(node.inputs) == 1
            and len(node.outputs) == 1
            and not can_bypass(node.inputs[0], node.outputs[0])
        ]
        for node in hidden:
            node.op_type = _HIDDEN_IDENTITY
        try:
            result = common_passes.IdentityEliminationPass()(model)
        finally:
            for node in hidden:
                node.op_type = "Identity"
        return bool(result.modified)

    @staticmethod
    def _remove_dropouts(model: ir.Model) -> bool:
        opset = opset_of(model, STANDARD, 1)
        modified = False
        for node in list(ir.traversal.RecursiveGraphIterator(model.graph)):
            if not _standard(node, "Dropout") or not node.inputs or node.inputs[0] is None:
                continue
            if not _inference_dropout(node, opset):
                continue
            modified |= bypass(node, node.inputs[0], node.outputs[0])
        return modified


def _inference_dropout(node: ir.Node, opset: int) -> bool:
    """Dropout that passes its input through: no training mode (opset 12+: absent or constant False).

    Before opset 12 Dropout is treated as inference, as the executor does.
    """
    if opset >= 12 and len(node.inputs) > 2 and node.inputs[2] is not None:
        mode = constant_array(node.inputs[2], overridable=False)
        return mode is not None and not np.any(np.asarray(mode))
    return True
