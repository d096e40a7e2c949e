"""Pass base class and registry.

A pass is a dataclass whose fields are its typed options, with a kebab-case
``name`` so that the CLI and pipeline strings can refer to it. Passes are
onnx_ir passes: ``pass_(model)`` returns ``PassResult(model, modified)``, and
``modified`` must be honest (False means the model is exactly as it was).
Our passes are in place (no deep copies); wrap one with ``functionalize`` to
get a copy-on-run version.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from qonnx_tools._ir import ir, passes
from qonnx_tools.errors import BadInputError

PassResult = passes.PassResult


class QonnxPass(passes.InPlacePass):
    """Base of every registered pass; subclasses are dataclasses (fields = options)."""

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""

    def call(self, model: ir.Model) -> PassResult:  # pragma: no cover - abstract
        raise NotImplementedError

    def describe(self) -> str:
        """``name{opt=value ...}`` with the options that differ from their defaults."""
        if not dataclasses.is_dataclass(self):
            return self.name
        changed = [
            f"{f.name}={getattr(self, f.name)!r}"
            for f in dataclasses.fields(self)
            if f.default is not dataclasses.MISSING and getattr(self, f.name) != f.default
        ]
        return self.name + ("{" + " ".join(changed) + "}" if changed else "")


_REGISTRY: dict[str, type[QonnxPass]] = {}


def register_pass(cls: type[QonnxPass]) -> type[QonnxPass]:
    """Class decorator: make ``cls`` available by its ``name`` to pipelines and the CLI."""
    if not cls.name or cls.name != cls.name.lower() or " " in cls.name or "_" in cls.name:
        raise ValueError(f"pass name {cls.name!r} must be kebab-case")
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise ValueError(f"pass {cls.name!r} registered twice")
    _REGISTRY[cls.name] = cls
    return cls


def get_pass_class(name: str) -> type[QonnxPass]:
    """The pass class registered as ``name``; BadInputError listing known names otherwise."""
    _load_builtin_passes()
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise BadInputError(f"unknown pass {name!r}; known passes: {known}") from None


def make_pass(name: str, options: dict[str, Any] | None = None) -> QonnxPass:
    """Instantiate a registered pass with options (given as strings or typed values)."""
    cls = get_pass_class(name)
    options = dict(options or {})
    fields = {f.name: f for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else {}
    typed: dict[str, Any] = {}
    for key, raw in options.items():
        field = fields.get(key)
        if field is None:
            raise BadInputError(f"pass {name!r} has no option {key!r} (options: {', '.join(fields) or 'none'})")
        typed[key] = _convert(raw, field, name)
    return cls(**typed)


def registered_passes() -> dict[str, type[QonnxPass]]:
    """All registered passes by name (sorted)."""
    _load_builtin_passes()
    return dict(sorted(_REGISTRY.items()))


def _convert(raw: Any, field: dataclasses.Field, pass_name: str) -> Any:
    if not isinstance(raw, str):
        return raw
    kind = field.type if isinstance(field.type, type) else str(field.type)
    text = raw.strip()
    try:
        if kind in (bool, "bool"):
            if text.lower() in ("1", "true", "yes", "on"):
                return True
            if text.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(text)
        if kind in (int, "int") or kind == "int | None" and text.lower() != "none":
            return int(text)
        if kind in (float, "float"):
            return float(text)
        if "None" in str(kind) and text.lower() == "none":
            return None
    except ValueError:
        raise BadInputError(f"pass {pass_name!r}: option {field.name}={raw!r} is not a valid {kind}") from None
    return text


_BUILTINS_LOADED = False


def _load_builtin_passes() -> None:
    """Register the classes of ``passes/builtin.py``'s explicit list (once)."""
    global _BUILTINS_LOADED
    if _BUILTINS_LOADED:
        return
    from qonnx_tools.passes.builtin import BUILTIN_PASSES

    for cls in BUILTIN_PASSES:
        register_pass(cls)
    _BUILTINS_LOADED = True
