"""The shape of a QONNX custom-op definition.

Each QONNX op lives in one module of ``qonnx_tools.ops`` and declares, in one class:
its schema (inputs, outputs, attributes with types, defaults and allowed values),
shape/type inference, quantized-datatype inference, NumPy execution, the legality
of its constant parameters (``check_params``), its lowering to standard ONNX
(``lower_qcdq``) and its raising rule from standard Q/DQ (``raise_qdq``). The
executor, ``check``, the passes and the converters all read the op from here, so
there is one definition of its numerics and of its rules.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Mapping, Sequence

import numpy as np

from qonnx_tools._ir import ir
from qonnx_tools.decline import Decline
from qonnx_tools.domains import QONNX
from qonnx_tools.errors import InvalidAttributeError
from qonnx_tools.node_context import NodeContext

if TYPE_CHECKING:
    from qonnx_tools.datatypes import DataType
    from qonnx_tools.lowering import LoweringContext, LoweringOutcome, QdqChain, Raised

REQUIRED = object()  #: marker: the attribute has no default


@dataclass(frozen=True)
class AttrSpec:
    """One attribute: Python type, default (or REQUIRED), allowed values, normaliser."""

    name: str
    kind: type  # int, float, str or tuple
    default: Any = REQUIRED
    allowed: tuple[Any, ...] | None = None
    normalise: Callable[[Any], Any] | None = None
    doc: str = ""


@dataclass(frozen=True)
class InputSpec:
    """One input of the op, in position order."""

    name: str
    doc: str = ""
    optional: bool = False


@dataclass(frozen=True)
class TensorInfo:
    """What inference knows about one tensor: element type, shape, constant value, datatype."""

    dtype: ir.DataType | None = None
    shape: ir.Shape | None = None
    value: np.ndarray | None = None
    datatype: DataType | None = None


@dataclass(frozen=True)
class ParamProblem:
    """One problem ``check_params`` found: the message (it names the parameter, not the node)
    and its severity, ``"error"`` or ``"warning"`` (as ``qonnx_tools.check.Finding``'s)."""

    message: str
    severity: str = "error"


class QonnxOp:
    """Base of every custom-op definition; subclasses set the ClassVars and ``execute``."""

    name: ClassVar[str]
    aliases: ClassVar[tuple[str, ...]] = ()
    domain: ClassVar[str] = QONNX
    since_version: ClassVar[int] = 1
    inputs: ClassVar[tuple[InputSpec, ...]] = ()
    outputs: ClassVar[tuple[str, ...]] = ("Y",)
    attributes: ClassVar[tuple[AttrSpec, ...]] = ()

    # -- schema --------------------------------------------------------------
    @classmethod
    def resolve_attributes(cls, raw: Mapping[str, Any], where: str) -> dict[str, Any]:
        """Attributes with defaults filled in, types checked and values normalised.

        Unknown attributes are kept (exporters add e.g. ``backend``) but not validated.
        Raises InvalidAttributeError naming ``where`` (file/node) and the attribute.
        """
        out = dict(raw)
        for spec in cls.attributes:
            if spec.name not in raw:
                if spec.default is REQUIRED:
                    raise InvalidAttributeError(f"{where}: required attribute {spec.name!r} is missing")
                out[spec.name] = spec.default
                continue
            value = raw[spec.name]
            if not _matches_kind(value, spec.kind):
                raise InvalidAttributeError(
                    f"{where}: attribute {spec.name!r} must be {spec.kind.__name__}, got {type(value).__name__} {value!r}"
                )
            if spec.normalise is not None:
                value = spec.normalise(value)
            if spec.allowed is not None and value not in spec.allowed:
                allowed = ", ".join(map(str, spec.allowed))
                raise InvalidAttributeError(f"{where}: attribute {spec.name!r}={value!r} is not one of {allowed}")
            out[spec.name] = value
        return out

    @classmethod
    def check_inputs(cls, n_inputs: int, where: str) -> None:
        """Raise InvalidAttributeError when the node has too few or too many inputs."""
        required = sum(1 for spec in cls.inputs if not spec.optional)
        if not required <= n_inputs <= len(cls.inputs):
            names = ", ".join(spec.name for spec in cls.inputs)
            raise InvalidAttributeError(f"{where}: {cls.name} takes inputs ({names}), node has {n_inputs}")

    # -- semantics -----------------------------------------------------------
    @classmethod
    def execute(cls, ctx: NodeContext, *inputs: np.ndarray | None) -> np.ndarray | Sequence[np.ndarray]:
        """NumPy execution; ``ctx.attrs`` already went through resolve_attributes."""
        raise NotImplementedError

    @classmethod
    def infer_types(cls, ctx: NodeContext, inputs: Sequence[TensorInfo]) -> list[TensorInfo]:
        """Output element types and shapes. Default: like the first input (element-wise ops)."""
        first = inputs[0] if inputs else TensorInfo()
        return [TensorInfo(dtype=first.dtype, shape=first.shape) for _ in cls.outputs]

    @classmethod
    def infer_datatypes(cls, ctx: NodeContext, inputs: Sequence[TensorInfo]) -> list[DataType | None]:
        """Quantized datatypes of the outputs (None where unknown or plain float)."""
        return [None for _ in cls.outputs]

    # -- parameter legality ---------------------------------------------------------------------
    @classmethod
    def parameter_inputs(cls) -> tuple[str, ...]:
        """Names of the inputs ``check_params`` judges. Default: every input after X (the channels-last
        ops, whose parameters are the standard op's, have none).

        A caller reports those it cannot read as numbers (declared non-numeric, empty) itself, since
        how it reads constants differs (protobuf or IR), and passes the rest to ``check_params``.
        """
        return tuple(spec.name for spec in cls.inputs[1:])

    @classmethod
    def check_params(
        cls,
        attrs: Mapping[str, Any],
        params: Mapping[str, np.ndarray],
        x_shape: Sequence[int | str | None] | None,
    ) -> list[ParamProblem]:
        """Problems with the node's constant parameters; ``[]`` when they are legal (default: no rules).

        ``attrs`` went through ``resolve_attributes``; ``params`` holds the numeric, non-empty
        constant values of the ``parameter_inputs`` the caller could read, by input name (missing:
        not constant, absent or unreadable); ``x_shape`` is X's shape (ints, or str/None for unknown
        dimensions) or None. The same call serves ``qonnx check`` (protobuf) and commands that
        transform (onnx_ir), so it takes plain arrays and names no node.
        """
        return []

    # -- standard ONNX forms (QCDQ) -------------------------------------------------------------
    @classmethod
    def lower_qcdq(cls, node: ir.Node, ctx: LoweringContext) -> LoweringOutcome:
        """Rule of the QONNX -> QCDQ conversion (see qonnx_tools.lowering): a Rewrite of ``node`` into
        standard ops computing ``execute``'s values exactly, or a Decline. Default: the op has no QCDQ form."""
        return Decline(f"no standard-ONNX lowering for {cls.name}")

    @classmethod
    def raise_qdq(cls, chain: QdqChain) -> Raised | Decline | None:
        """Rule of the QCDQ -> QONNX conversion (see qonnx_tools.lowering): the node of this op that
        computes ``chain``'s values, a Decline when the chain is of this op's kind but has no form as
        it, None when it is not (default: no Q/DQ chain raises to this op)."""
        return None


def _matches_kind(value: Any, kind: type) -> bool:
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is int:
        return isinstance(value, (int, np.integer)) and not isinstance(value, bool)
    return isinstance(value, kind)


def upper_str(value: str) -> str:
    """Normaliser for case-insensitive string attributes such as rounding modes."""
    return value.strip().upper()
