"""Decode onnx_ir attributes to plain Python/NumPy values once per model."""

from __future__ import annotations

from typing import Any

import numpy as np

from qonnx_tools._ir import ir
from qonnx_tools.errors import InvalidAttributeError


def decode_attribute(attr: Any, where: str = "") -> Any:
    """Plain value of one attribute: int, float, str, tuple, np.ndarray or ir.Graph."""
    if attr.is_ref():
        raise InvalidAttributeError(f"{where}: attribute {attr.name!r} is a reference attribute (only valid inside functions)")
    kind = attr.type
    value = attr.value
    A = ir.AttributeType
    if kind in (A.INT, A.FLOAT, A.GRAPH):
        return value
    if kind == A.STRING:
        return value.decode() if isinstance(value, bytes) else value
    if kind in (A.INTS, A.FLOATS, A.GRAPHS):
        return tuple(value)
    if kind == A.STRINGS:
        return tuple(v.decode() if isinstance(v, bytes) else v for v in value)
    if kind == A.TENSOR:
        return np.asarray(value.numpy())
    if kind == A.TENSORS:
        return tuple(np.asarray(t.numpy()) for t in value)
    return value


def decode_attributes(node: ir.Node) -> dict[str, Any]:
    """All attributes the node sets, decoded; defaults are the kernel's business."""
    where = f"node {node.name!r} ({node.op_type})"
    return {name: decode_attribute(attr, where) for name, attr in node.attributes.items()}
