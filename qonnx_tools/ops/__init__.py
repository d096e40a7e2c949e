"""Registry of QONNX custom ops: one module per op, looked up by (domain, name, version).

Each op module is the whole op (see ``qonnx_tools.ops.base.QonnxOp`` for the contract);
``_rounding`` and ``_params`` hold what the quantizers' execution and parameter rules share.

``get_op`` accepts any domain spelling and the old ``Quant`` name (see qonnx_tools.domains).
"""

from __future__ import annotations

from qonnx_tools.domains import canonical_op
from qonnx_tools.ops.base import AttrSpec, InputSpec, ParamProblem, QonnxOp, TensorInfo

_OPS: dict[tuple[str, str], list[type[QonnxOp]]] = {}


def register_op(cls: type[QonnxOp]) -> type[QonnxOp]:
    """Class decorator: make ``cls`` the definition of its (domain, name) from its since_version on."""
    versions = _OPS.setdefault((cls.domain, cls.name), [])
    versions.append(cls)
    versions.sort(key=lambda op: op.since_version)
    return cls


def get_op(domain: str, op_type: str, version: int | None = None) -> type[QonnxOp] | None:
    """The op definition for a node, or None when the op is not a known QONNX op.

    ``version`` is the model's opset for the domain; None (or 0) means the newest
    version (Brevitas' ``onnx.brevitas`` files import no version for the domain).
    """
    dom, name = canonical_op(domain, op_type)
    versions = _OPS.get((dom, name))
    if not versions:
        return None
    if not version:
        return versions[-1]
    chosen = versions[0]
    for op in versions:
        if op.since_version <= version:
            chosen = op
    return chosen


def all_ops() -> list[type[QonnxOp]]:
    """Every registered op definition (each version once)."""
    return [op for versions in _OPS.values() for op in versions]


def _load_builtin_ops() -> None:
    # Importing the op modules registers them.
    from qonnx_tools.ops import (  # noqa: F401
        bipolarquant,
        channels_last,
        floatquant,
        intquant,
        multithreshold,
        trunc,
    )


__all__ = ["AttrSpec", "InputSpec", "ParamProblem", "QonnxOp", "TensorInfo", "register_op", "get_op", "all_ops"]

_load_builtin_ops()
