"""Refusal reports: what a command did not do, grouped by reason with counts, or one line per node.

A converter's unconverted nodes and a readiness check's violations are lists of
``Refusal`` (node, op, reason, and the places the reason is about). Reports show them

- grouped (the default): one line per (op, reason), the most frequent first, with a
  count and a few node names, never longer than ``LINE_LIMIT`` characters::

      12 × Conv: per-channel weight scale needs opset >= 13 (e.g. /layer1/conv, /layer2/conv, +10 more)

- or one line per node (``--verbose``): node, op, reason and the places it is about.

Reasons that differ only by names would not group: the rewrites keep names out of
``Decline.reason`` and in its ``where`` (``Refusal.detail``). What a tag (a readiness
rule) requires and its fix are printed once, after the groups. JSON reports keep the full
per-node list and add ``groups`` (``group_dicts``).

``Refused`` is the ConversionError that carries its refusals, so that the CLI can show
them this way instead of as one long error line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Sequence

from qonnx_tools.errors import ConversionError

#: No line of the grouped form is longer than this.
LINE_LIMIT = 200
#: At most this many node names per group line.
EXAMPLES = 3
#: Node names longer than this are shortened to their end (the end names the layer).
_NAME_LIMIT = 60
#: Room a long reason leaves at least for the node count on a group line.
_COUNT_ROOM = 12
MULTIPLY = "\u00d7"


@dataclass(frozen=True)
class Refusal:
    """One node a command refused: ``reason`` groups (no names in it), ``detail`` names the places."""

    node: str
    op: str
    reason: str
    detail: str = ""
    tag: str = ""  # e.g. the readiness rule's name, shown as "[tag] reason"
    rule: str = ""  # what the tag requires, printed once per tag
    fix: str = ""  # one suggestion per tag, printed once

    @property
    def shown_reason(self) -> str:
        return f"[{self.tag}] {self.reason}" if self.tag else self.reason

    def __str__(self) -> str:
        where = f" [{self.detail}]" if self.detail else ""
        return f"{self.node or '<unnamed>'} ({self.op}): {self.shown_reason}{where}"


@dataclass
class Group:
    """Refusals with the same op and reason."""

    op: str
    reason: str
    nodes: list[str] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.nodes)

    def to_dict(self) -> dict:
        return {"op": self.op, "reason": self.reason, "count": self.count, "nodes": list(self.nodes)}


def as_refusals(items: Iterable) -> list[Refusal]:
    """Refusals from anything with node/op/reason (Unconverted) or node/op/rule/message/problem (Violation)."""
    out = []
    for item in items:
        if isinstance(item, Refusal):
            out.append(item)
        elif hasattr(item, "rule"):
            out.append(Refusal(item.node, item.op, item.problem, getattr(item, "detail", ""),
                               tag=item.rule, rule=item.message, fix=item.fix))
        else:
            out.append(Refusal(item.node, item.op, item.reason, getattr(item, "detail", "")))
    return out


def group(items: Iterable) -> list[Group]:
    """Groups by (op, reason as shown), the largest first, ties in order of first appearance."""
    groups: dict[tuple[str, str], Group] = {}
    for r in as_refusals(items):
        key = (r.op, r.shown_reason)
        groups.setdefault(key, Group(r.op, r.shown_reason)).nodes.append(r.node or "<unnamed>")
    return sorted(groups.values(), key=lambda g: -g.count)  # sorted() is stable


def group_dicts(items: Iterable) -> list[dict]:
    """The ``groups`` of a JSON report: op, reason, count and every node name."""
    return [g.to_dict() for g in group(items)]


def format_grouped(items: Iterable, *, indent: str = "  ", limit: int = LINE_LIMIT) -> list[str]:
    """One line per (op, reason) with a count and a few node names (at most ``limit`` characters), then
    each tag's rule and fix once."""
    refusals = as_refusals(items)
    groups = group(refusals)
    if not groups:
        return []
    width = len(str(groups[0].count))
    lines = []
    for g in groups:
        prefix = f"{indent}{g.count:>{width}} {MULTIPLY} {g.op}: "
        reason = _clip(g.reason, limit - len(prefix) - _COUNT_ROOM)
        lines.append(prefix + reason + _examples(g.nodes, limit - len(prefix) - len(reason)))
    return lines + _rule_lines(refusals, indent, limit)


def format_each(items: Iterable, *, indent: str = "  ") -> list[str]:
    """One line per node: node, op, reason and the places it is about (no length limit); then each tag's
    rule and fix once."""
    refusals = as_refusals(items)
    return [f"{indent}{r}" for r in refusals] + _rule_lines(refusals, indent, None)


def format_refusals(items: Iterable, *, verbose: bool = False, indent: str = "  ") -> list[str]:
    """``format_each`` with ``verbose``, else ``format_grouped``."""
    return format_each(items, indent=indent) if verbose else format_grouped(items, indent=indent)


def summary(items: Sequence, what: str) -> str:
    """``28 node(s) not converted to qop, 3 reason(s)``-style count line (``what`` follows the count)."""
    refusals = as_refusals(items)
    reasons = len(group(refusals))
    return f"{len(refusals)} {what}, {reasons} reason(s)"


class Refused(ConversionError):
    """A ConversionError carrying its refusals (``refusals``) and a one-line ``summary``.

    ``str()`` lists every node (the library's message); the CLI prints ``summary`` as the
    error line and the refusals grouped (``format_refusals``) above it."""

    def __init__(self, message: str, refusals: Iterable = (), summary: str = "") -> None:
        super().__init__(message)
        self.items = list(refusals)  # as given (Unconverted, Violation, ...)
        self.refusals = as_refusals(self.items)
        self.summary = summary or message

    def __reduce__(self):  # picklable with its refusals (zoo workers, multiprocessing)
        return (type(self), (str(self), self.items, self.summary))


def refused_report(refused: "Refused", *, verbose: bool = False, indent: str = "  ") -> list[str]:
    """What a command prints for a refusal raised before anything was changed: the summary, then
    one line per reason (``verbose``: per node)."""
    head = f"{indent}refused: {refused.summary}" + ("" if verbose else " (--verbose: one line per node)")
    return [head, *format_refusals(refused.refusals, verbose=verbose, indent=indent + "  ")]


def _rule_lines(refusals: list[Refusal], indent: str, limit: int | None) -> list[str]:
    """``rule [tag]: what it requires`` and ``  fix: ...`` once per tag, in order of first appearance."""
    seen: dict[str, Refusal] = {}
    for r in refusals:
        if r.tag and (r.rule or r.fix) and r.tag not in seen:
            seen[r.tag] = r
    lines = []
    for tag, r in seen.items():
        for head, text in ((f"{indent}rule [{tag}]: ", r.rule), (f"{indent}  fix: ", r.fix)):
            if text:
                lines.append(head + (text if limit is None else _clip(text, limit - len(head))))
    return lines


def _clip(text: str, room: int) -> str:
    text = " ".join(text.split())
    room = max(room, 20)
    return text if len(text) <= room else text[: room - 3].rstrip() + "..."


def _short(name: str) -> str:
    return name if len(name) <= _NAME_LIMIT else "..." + name[-(_NAME_LIMIT - 3):]


def _tail(name: str, room: int) -> str:
    """``name`` within ``room`` characters: ``.../last/components`` (cut at a "/" where possible), or ""."""
    if len(name) <= room:
        return name
    if room < 16:
        return ""
    tail = name[-(room - 3):]
    cut = tail.find("/")
    if 0 <= cut < len(tail) - 8:
        tail = tail[cut:]
    return "..." + tail


def _examples(nodes: list[str], room: int) -> str:
    """`` (a, b)`` or `` (e.g. a, b, +10 more)`` within ``room`` characters."""
    names = [_short(n) for n in nodes]
    for shown in range(min(EXAMPLES, len(names)), 0, -1):
        rest = len(names) - shown
        listed = ", ".join(names[:shown])
        text = f" (e.g. {listed}, +{rest} more)" if rest else f" ({listed})"
        if len(text) <= room:
            return text
    # one name, shortened to its last path components
    rest = len(names) - 1
    frame = len(f" (e.g. , +{rest} more)") if rest else len(" ()")
    name = _tail(nodes[0], room - frame)
    if name:
        return f" (e.g. {name}, +{rest} more)" if rest else f" ({name})"
    text = f" ({len(names)} nodes)" if len(names) > 1 else " (1 node)"
    return text if len(text) <= room else ""


__all__ = [
    "LINE_LIMIT", "Refusal", "Group", "Refused", "as_refusals", "group", "group_dicts", "format_grouped",
    "format_each", "format_refusals", "summary",
]
