"""Pass base class and registry.

A pass is a dataclass whose fields are its typed options, with a kebab-case
``name`` so that the CLI and pipeline strings can refer to it. Passes are
onnx_ir passes: ``pass_(model)`` returns ``PassResult(model, modified)``, and
``modified`` must be honest (False means the model is exactly as it was).
Our passes are in place (no deep copies); wrap one with ``functionalize`` to
get a copy-on-run version.

Declining: a rewrite that leaves a candidate alone says why with a
:class:`~qonnx_tools.decline.Decline`; the pass records it with ``self.decline(why, node)``,
the one place declines are collected. After a run ``pass_.declined`` holds one line
``node 'n' (Op): reason`` per candidate left alone (``Decline.format``, the one formatter);
each run starts with an empty list. One-node rewrites go through ``rewrite_each``.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
from typing import Any, Callable, ClassVar, Iterable

from qonnx_tools._ir import ir, passes
from qonnx_tools.decline import Decline
from qonnx_tools.errors import BadInputError

PassResult = passes.PassResult

logger = logging.getLogger(__name__)


class QonnxPass(passes.InPlacePass):
    """Base of every registered pass; subclasses are dataclasses (fields = options)."""

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""

    def __init_subclass__(cls, name: str | None = None, **kwargs: Any) -> None:
        """``class P(QonnxPass, name="kebab-name")``: the pass's name; its summary (``qonnx passes``)
        is the docstring's first paragraph unless the class sets ``summary`` itself."""
        super().__init_subclass__(**kwargs)
        if name is not None:
            cls.name = name
        doc = inspect.cleandoc(cls.__dict__.get("__doc__") or "")
        if doc and "summary" not in cls.__dict__:
            cls.summary = " ".join(doc.split("\n\n")[0].split())

    #: After a run: one ``node 'n' (Op): reason`` line per candidate the run left alone.
    declined: list[str]

    def __post_init__(self) -> None:
        self.declined = []

    def __call__(self, model_or_result, /) -> PassResult:
        self.declined = []  # each run reports its own declines
        return super().__call__(model_or_result)

    def call(self, model: ir.Model) -> PassResult:  # pragma: no cover - abstract
        raise NotImplementedError

    def decline(self, why: Decline, node: ir.Node | None = None) -> None:
        """Record that ``node`` (or the first node ``why`` names) was left alone, and why."""
        line = why.format(node)
        self.declined.append(line)
        logger.debug("%s declined %s", self.name, line)

    def rewrite_each(
        self, nodes: Iterable[ir.Node], rewrite: Callable[[ir.Node], object], quiet: Iterable[str] = ()
    ) -> bool:
        """Apply a one-node ``rewrite`` to each node: it returns a ``Decline`` when it leaves the node
        alone, anything else when it rewrote. Declines are recorded (``decline``) except those whose
        reason is in ``quiet`` (they only mean "not a candidate"). Returns whether anything was rewritten."""
        quiet = set(quiet)
        modified = False
        for node in nodes:
            outcome = rewrite(node)
            if not isinstance(outcome, Decline):
                modified = True
            elif outcome.reason not in quiet:
                self.decline(outcome, node)
        return modified

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
    existing = _REGISTRY.get(cls.name)
    if existing is not None and existing is not cls and _origin(existing) != _origin(cls):
        raise ValueError(f"pass {cls.name!r} registered twice")
    _REGISTRY[cls.name] = cls
    return cls


def _origin(cls: type) -> tuple[str, str]:
    """Where a pass class is defined: loading the same script twice (``qonnx transform`` loads
    scripts by path) defines the same class again, which replaces the first, not a clash."""
    call = getattr(cls, "call", None)
    return cls.__qualname__, getattr(getattr(call, "__code__", None), "co_filename", "")


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
