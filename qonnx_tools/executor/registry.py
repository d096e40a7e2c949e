"""Kernel registry of the reference executor.

A kernel is a plain function ``kernel(ctx, *inputs) -> array | sequence of arrays``
registered for (domain, op_type, since_version). For a model whose opset for the
domain is V, the kernel with the highest ``since_version <= V`` is chosen, as in
ONNX's own operator versioning. Missing optional inputs arrive as ``None``.

QONNX custom ops are not registered here: their op module's ``execute`` is the
kernel (see qonnx_tools.ops), so there is exactly one implementation of each.
"""

from __future__ import annotations

from typing import Callable, Sequence, Union

import numpy as np

from qonnx_tools.node_context import NodeContext  # noqa: F401  (kernels take it; defined low, for ops too)

KernelResult = Union[np.ndarray, Sequence[np.ndarray]]
Kernel = Callable[..., KernelResult]

STANDARD_DOMAIN = ""

_KERNELS: dict[tuple[str, str], list[tuple[int, Kernel]]] = {}


def register(op_type: str, since: int = 1, domain: str = STANDARD_DOMAIN) -> Callable[[Kernel], Kernel]:
    """Decorator: register ``fn`` as the kernel of ``op_type`` from opset ``since`` on."""

    def decorate(fn: Kernel) -> Kernel:
        versions = _KERNELS.setdefault((domain, op_type), [])
        if any(v == since for v, _ in versions):
            raise ValueError(f"kernel for {domain or 'ai.onnx'}::{op_type} v{since} registered twice")
        versions.append((since, fn))
        versions.sort(key=lambda item: item[0])
        return fn

    return decorate


def lookup(op_type: str, opset: int, domain: str = STANDARD_DOMAIN) -> Kernel | None:
    """The kernel for ``op_type`` at ``opset``, or None when no version applies."""
    chosen = None
    for since, fn in _KERNELS.get((domain, op_type), ()):
        if since <= opset:
            chosen = fn
    return chosen


def claimed_ops(domain: str = STANDARD_DOMAIN) -> dict[str, list[int]]:
    """op_type -> sorted since_versions of every kernel registered for ``domain``."""
    return {op: [v for v, _ in versions] for (dom, op), versions in _KERNELS.items() if dom == domain}
