"""The one place where qonnx_tools imports onnx_ir (and onnxscript).

Every other module does ``from qonnx_tools._ir import ir`` (and, for passes,
``from qonnx_tools._ir import passes``) so that an upstream API change is
absorbed here, in one file.
"""

from __future__ import annotations

import onnx_ir as ir
import onnx_ir.passes as passes
import onnx_ir.passes.common as common_passes
from onnx_ir import serde

__all__ = ["ir", "passes", "common_passes", "serde", "rewriter", "QUANT_ANNOTATION_KEY", "subgraphs"]

# Note: build tensors from NumPy arrays with ``ir.Tensor(array, name=...)``; the convenience
# constructor ``ir.tensor`` runs typing-Protocol isinstance checks that cost ~10x more per call.

#: Key under which onnx_ir keeps a value's ``quantization_annotation`` entries
#: (a ``dict[str, str]``, e.g. ``{"finn_datatype": "INT4"}``).
QUANT_ANNOTATION_KEY = "quant_parameter_tensor_names"


def subgraphs(node: ir.Node):
    """The graphs held in ``node``'s attributes (If branches, Loop/Scan bodies); reference attributes skipped."""
    for attr in node.attributes.values():
        if attr.is_ref():
            continue
        if attr.type == ir.AttributeType.GRAPH:
            yield attr.value
        elif attr.type == ir.AttributeType.GRAPHS:
            yield from attr.value


def __getattr__(name: str):
    # onnxscript (its pattern rewriter) costs ~0.3 s to import: load it only when a pass needs it.
    if name == "rewriter":
        from onnxscript import rewriter

        return rewriter
    raise AttributeError(name)
