"""``NodeContext``: what an op's code may know about its node besides the input arrays.

A low module: the QONNX op definitions (``qonnx_tools.ops``), the executor's standard
kernels (``qonnx_tools.executor``), the passes and the converters all build or read it,
so it depends on nothing of theirs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from qonnx_tools.errors import InvalidAttributeError


@dataclass(frozen=True)
class NodeContext:
    """What a kernel may know about its node besides the input arrays."""

    name: str
    op_type: str
    domain: str
    opset: int
    attrs: Mapping[str, Any] = field(default_factory=dict)
    n_outputs: int = 1

    def attr(self, key: str, default: Any = None) -> Any:
        """Attribute value, or ``default`` when the node does not set it."""
        return self.attrs.get(key, default)

    def required_attr(self, key: str) -> Any:
        """Attribute value; raises InvalidAttributeError naming the node when absent."""
        if key not in self.attrs:
            raise InvalidAttributeError(
                f"node {self.name!r} ({self.op_type}): required attribute {key!r} is missing"
            )
        return self.attrs[key]


__all__ = ["NodeContext"]
