"""``Decline``: the one way a rewrite, a converter or a readiness rule says why it did not apply.

Modelled on onnxscript's ``MatchResult.fail(reason, failure_source)``: a reason for the
user and the places it is about (nodes, values or plain names). It is both a value and
an exception, so that code can ``return Decline(...)`` from a one-node rewrite or a rule
check, or ``raise Decline(...)`` from deep inside a planner, and the caller collects it
the same way::

    outcome = rewrite(node)
    if isinstance(outcome, Decline):
        declined.append(outcome.format(node))

``format`` (and ``str``) give the one line users see: ``node 'conv1' (Conv): reason``.

Keep ``reason`` free of the names of the node, its values and its neighbours (and of other
per-node numbers where that is easy): put those in ``where``. Equal reasons then group in
refusal reports (``qonnx_tools.refusals``: ``12 × Conv: reason``), and ``detail`` names the
places for the one-line-per-node (``--verbose``) form.
"""

from __future__ import annotations

from typing import Any


class Decline(Exception):
    """Why something was not done: ``reason`` for the user, ``where`` the nodes/values it is about."""

    def __init__(self, reason: str, *where: Any) -> None:
        super().__init__(reason)
        self.reason = str(reason)
        self.where = tuple(where)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Decline) and (self.reason, self.where) == (other.reason, other.where)

    def __hash__(self) -> int:
        return hash(self.reason)

    def __repr__(self) -> str:
        return f"Decline({self.reason!r}" + "".join(f", {_place(w)}" for w in self.where) + ")"

    def __str__(self) -> str:
        return self.format()

    def format(self, node: Any = None) -> str:
        """One line: ``node 'name' (Op): reason``, naming ``node`` or else the first node of ``where``."""
        subject = node if node is not None else next((w for w in self.where if _is_node(w)), None)
        return f"{_place(subject)}: {self.reason}" if subject is not None else self.reason

    def detail(self, node: Any = None) -> str:
        """The places of ``where`` other than ``node``, one phrase: ``value 'x'; node 'bn' (BatchNormalization)``."""
        return "; ".join(_place(w) for w in self.where if w is not node)


def _is_node(item: Any) -> bool:
    return hasattr(item, "op_type") and hasattr(item, "outputs")


def _place(item: Any) -> str:
    if _is_node(item):
        return f"node {item.name or '<unnamed>'!r} ({item.op_type})"
    if hasattr(item, "producer") and hasattr(item, "name"):
        return f"value {item.name!r}"
    return str(item)


__all__ = ["Decline"]
