"""What a conversion returns: the converted model and an honest account of what it did."""

from __future__ import annotations

from dataclasses import dataclass, field

from qonnx_tools._ir import ir
from qonnx_tools.refusals import Refused, summary


@dataclass(frozen=True)
class Unconverted:
    """A node left as it was, and why: ``reason`` (no names in it, so that equal reasons group in
    reports) and ``detail``, the values and nodes it is about."""

    node: str
    op: str
    reason: str
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.node} ({self.op}): {self.reason}" + (f" [{self.detail}]" if self.detail else "")


@dataclass
class ConversionResult:
    """The converted model (converted in place), nodes left unconverted, and notes for the user."""

    model: ir.Model
    target: str
    unconverted: list[Unconverted] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: each node rewritten, with the form it took as ``reason`` (grouped like refusals in reports);
    #: ``notes`` carries the same lines as text
    converted: list[Unconverted] = field(default_factory=list)

    def raise_if_partial(self, source: str = "model") -> None:
        """ConversionError (``Refused``, carrying the nodes) listing every unconverted node (the CLI's exit 1)."""
        if self.unconverted:
            listing = "; ".join(str(u) for u in self.unconverted)
            raise Refused(
                f"{source}: {len(self.unconverted)} node(s) not converted to {self.target}: {listing}",
                self.unconverted,
                summary(self.unconverted, f"node(s) not converted to {self.target}"),
            )
