"""Readiness rules: a Rule is data (name, which nodes it applies to, a check, a message, a fix).

``check_fn(node, model)`` returns None when the node is fine, else a ``Decline`` whose
reason is a short precise description of the problem without names (so that equal
problems group in reports: ``12 × Conv: [channels-last] ...``) and whose ``where`` names
the inputs and values it is about. ``run_rules`` applies every rule of a table to every
node it applies to and returns one Violation per (node, rule) broken, in graph order
(``problem`` is the decline's reason, ``detail`` its places).

A ``fix`` names only what the ``qonnx`` CLI can do (``fix_by_pass``), or starts with
"none automatic:" when the model has to change at its source.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np

from qonnx_tools._ir import ir
from qonnx_tools.constants import constant_array, constant_scalar
from qonnx_tools.decline import Decline
from qonnx_tools.domains import CHANNELS_LAST, QONNX, STANDARD, canonical_domain

scalar = constant_scalar  # the rule tables' name for it


@dataclass(frozen=True)
class Rule:
    name: str
    applies_to: Callable[[ir.Node], bool]
    check_fn: Callable[[ir.Node, ir.Model], Decline | None]
    message: str
    fix: str


@dataclass
class Violation:
    rule: str
    node: str
    op: str
    problem: str
    message: str
    fix: str
    detail: str = ""

    def __str__(self) -> str:
        where = f" [{self.detail}]" if self.detail else ""
        return f"{self.node} ({self.op}): [{self.rule}] {self.message}: {self.problem}{where}; fix: {self.fix}"

    def to_dict(self) -> dict:
        return asdict(self)


def run_rules(model: ir.Model, rules: list[Rule]) -> list[Violation]:
    found: list[Violation] = []
    for index, node in enumerate(model.graph):
        for rule in rules:
            if not rule.applies_to(node):
                continue
            why = rule.check_fn(node, model)
            if why is not None:
                found.append(
                    Violation(
                        rule.name, node.name or f"<unnamed #{index}>", node.op_type, why.reason, rule.message, rule.fix,
                        why.detail(node),
                    )
                )
    return found


# -- predicates and helpers shared by the tables ----------------------------------------------


def is_op(*ops: str, domain: str | tuple[str, ...] = STANDARD) -> Callable[[ir.Node], bool]:
    """Predicate: the node is one of ``ops`` in ``domain`` (or one of several domains)."""
    names, domains = set(ops), {domain} if isinstance(domain, str) else set(domain)
    return lambda node: canonical_domain(node.domain) in domains and node.op_type in names


def any_node(node: ir.Node) -> bool:
    return True


QUANTIZERS = ("IntQuant", "Quant", "BipolarQuant", "Trunc", "FloatQuant", "MultiThreshold")
is_quantizer = is_op(*QUANTIZERS, domain=QONNX)
is_int_quant = is_op("IntQuant", "Quant", domain=QONNX)
is_channels_last = lambda node: canonical_domain(node.domain) == CHANNELS_LAST  # noqa: E731


def input_input(node: ir.Node, index: int) -> ir.Value | None:
    return node.inputs[index] if index < len(node.inputs) else None



def rank(value: ir.Value | None) -> int | None:
    return None if value is None or value.shape is None else len(value.shape)


def fix_by_pass(name: str, *, prepare_runs: bool = True) -> str:
    """The fix a registered pass makes, as the CLI runs it."""
    alone = f"qonnx cleanup MODEL -o OUT --passes {name}"
    if prepare_runs:
        return f"the pass {name}: prepare runs it (not with --check-only); alone: {alone}"
    return f"the pass {name}: {alone}"


def unknown_shapes(node: ir.Node, model: ir.Model) -> Decline | None:
    bad, missing = [], False
    for v in node.outputs:
        if v is None or not (v.uses() or v.is_graph_output()):
            continue
        if v.type is None or v.shape is None:
            bad.append(f"{v.name!r} has no shape")
            missing = True
        elif any(not isinstance(d, int) for d in v.shape):
            bad.append(f"{v.name!r} has shape {[d if isinstance(d, int) else str(d) for d in v.shape]}")
    if not bad:
        return None
    return Decline("an output has no shape" if missing else "an output has a symbolic shape", "; ".join(bad))


def unnamed(node: ir.Node, model: ir.Model) -> Decline | None:
    return Decline("node has no name") if not node.name else None


def non_constant_params(node: ir.Node, model: ir.Model) -> Decline | None:
    names = {"IntQuant": ("scale", "zeropt", "bitwidth"), "Quant": ("scale", "zeropt", "bitwidth"),
             "BipolarQuant": ("scale",), "Trunc": ("scale", "zeropt", "input_bit_width", "output_bit_width"),
             "FloatQuant": ("scale", "exponent_bitwidth", "mantissa_bitwidth", "exponent_bias", "max_val"),
             "MultiThreshold": ("thresholds",)}.get(node.op_type, ())
    bad = [
        (label, v)
        for label, v in zip(names, node.inputs[1:])
        if v is not None and constant_array(v, overridable=False) is None
    ]
    if not bad:
        return None
    return Decline("computed at run time: " + ", ".join(label for label, _ in bad), *(v for _, v in bad))


def nonzero_zeropoint(node: ir.Node, model: ir.Model) -> Decline | None:
    zp = input_input(node, 2)  # IntQuant/Trunc zeropt and QuantizeLinear/DequantizeLinear y/x_zero_point
    if zp is None:
        return None
    arr = constant_array(zp)
    if arr is None:
        return Decline("zero-point is not a constant", zp)
    if np.any(arr != 0):
        shown = arr.reshape(-1)[:4].tolist()
        return Decline("non-zero zero-point", f"zero-point {zp.name!r} = {shown}{'...' if arr.size > 4 else ''}")
    return None


def reshape_elements(node: ir.Node, model: ir.Model) -> Decline | None:
    """A Reshape whose static input and output shapes hold different element counts (onnx's own
    shape inference does not compare them; execution fails)."""
    data, out = input_input(node, 0), node.outputs[0] if node.outputs else None
    shapes = [v.shape for v in (data, out) if v is not None and v.shape is not None]
    if len(shapes) != 2 or not all(isinstance(d, int) for s in shapes for d in s):
        return None
    counts = [int(np.prod(list(s), dtype=np.int64)) for s in shapes]
    if counts[0] == counts[1]:
        return None
    return Decline(f"reshapes {counts[0]} elements {list(shapes[0])} into {list(shapes[1])} ({counts[1]} elements)")


#: A rule of every target's table: a Reshape hard-coding another input size cannot run.
RESHAPE_ELEMENTS = Rule(
    "reshape-elements", is_op("Reshape"), reshape_elements,
    "the Reshape's target shape holds another element count than its input",
    "none automatic: the target shape is hard-coded for another input size (e.g. the batch prepare set to 1, "
    "on a model whose first axis is not its batch); re-export at the batch size wanted",
)
