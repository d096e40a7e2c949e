"""Operator domains: one table maps every known QONNX/FINN/Brevitas spelling to one domain.

Files exported by Brevitas (``onnx.brevitas``), QKeras-to-QONNX and qonnx
(``qonnx.custom_op.general``) and FINN (``finn.custom_op.general``) name the same
operators in different domains. At load time every alias is rewritten to the
canonical domain, so the rest of the code compares against one string. The
canonical names are qonnx's own, so saved files stay readable by qonnx and FINN.
"""

from __future__ import annotations

STANDARD = ""
QONNX = "qonnx.custom_op.general"
CHANNELS_LAST = "qonnx.custom_op.channels_last"

#: Domains whose operator schemas the onnx package itself defines (canonical spelling).
ONNX_DOMAINS = (STANDARD, "ai.onnx.ml", "ai.onnx.preview.training")

#: alias -> canonical domain
DOMAIN_ALIASES: dict[str, str] = {
    "ai.onnx": STANDARD,
    "onnx.brevitas": QONNX,
    "finn": QONNX,
    "finn.custom_op.general": QONNX,
    "qonnx.custom_op.general": QONNX,
    "qonnx.custom_op": QONNX,
    "finn.custom_op.channels_last": CHANNELS_LAST,
    "qonnx.custom_op.channels_last": CHANNELS_LAST,
}

#: op_type -> canonical op name, per canonical domain (``Quant`` is the old name of ``IntQuant``).
OP_ALIASES: dict[tuple[str, str], str] = {
    (QONNX, "Quant"): "IntQuant",
}


def canonical_domain(domain: str) -> str:
    """The canonical spelling of ``domain`` (unknown domains are returned unchanged)."""
    return DOMAIN_ALIASES.get(domain, domain)


def canonical_op(domain: str, op_type: str) -> tuple[str, str]:
    """(canonical domain, canonical op name) of an operator as written in a file."""
    dom = canonical_domain(domain)
    return dom, OP_ALIASES.get((dom, op_type), op_type)


def is_qonnx_domain(domain: str) -> bool:
    """True for every spelling of the QONNX custom-op domains (general and channels_last)."""
    return canonical_domain(domain) in (QONNX, CHANNELS_LAST)


def opset_of(model, domain: str, default: int = 0) -> int:
    """The version ``model`` (anything with ``opset_imports``: a model, graph or function) imports
    for ``domain``, whatever alias spelling either side uses (``""`` and ``"ai.onnx"`` are the
    same domain); ``default`` when it imports none. The one way the code reads an opset."""
    wanted = canonical_domain(domain)
    versions = [int(v) for d, v in model.opset_imports.items() if canonical_domain(d) == wanted and v is not None]
    return max(versions) if versions else default
