"""opset-upgrade: convert the model's ai.onnx opset with ``onnx.version_converter``.

Option ``target`` (required): the ai.onnx opset to convert to. Converting down
is refused unless ``allow_downgrade`` (the converter has few down adapters).

The converter's adapters rewrite the standard ops whose signature changed
(attributes that became inputs: ``Pad`` pads, ``Clip`` min/max, ``Split`` split,
``Squeeze``/``Unsqueeze`` axes, ``Upsample``/``Resize`` scales, reductions' axes,
...). The IR version is raised when the target opset needs a newer one (the
converter leaves it as it was).

QONNX custom ops (and any other non-standard domain) are carried through
unchanged. With onnx 1.23 the converter passes nodes of other domains through
as long as their domain is imported -- stripping those imports before
conversion, as older recipes do, makes its type inference fail ("No opset import
for domain ..."), so the imports stay. After conversion every non-standard node
is checked against the original (op type, domain, inputs, outputs and
attributes, byte for byte); any difference is an error and the model is left
unchanged. Non-standard domains keep their opset versions.

**Size limit:** the converter works on a serialised ``ModelProto``, which cannot
exceed 2 GiB. Models whose tensors (initializers and Constant attributes, all
graphs) exceed ``MAX_TENSOR_BYTES`` (1.8 GB) are refused with a BadInputError
before anything is serialised. Weights are not duplicated: after conversion
the original tensor objects (including lazily loaded external data) are put
back on the converted model's initializers of the same name, type and shape.

The pass is in place: the converted graph and functions replace the model's.
``modified`` is False when the opset already equals ``target``.

Implementation: plain code around ``onnx.version_converter.convert_version``
(neither the rewriter nor use-def edits: the conversion is the converter's).
"""

from __future__ import annotations

from dataclasses import dataclass

import onnx
import onnx.defs
import onnx.helper
import onnx.version_converter

from qonnx_tools._ir import ir
from qonnx_tools.domains import STANDARD, opset_of
from qonnx_tools.errors import BadInputError
from qonnx_tools.passes.base import PassResult, QonnxPass

#: Refuse to serialise models whose tensors exceed this many bytes (protobuf's limit is 2 GiB).
MAX_TENSOR_BYTES = 1_800_000_000


def tensor_bytes(model: ir.Model) -> int:
    """Bytes of all initializers and tensor attributes, in every graph (external data counted, not loaded)."""
    total = 0
    for graph in model.graphs():
        for value in graph.initializers.values():
            if value.const_value is not None:
                total += int(value.const_value.nbytes)
        for node in graph:
            for attr in node.attributes.values():
                if isinstance(attr, ir.Attr) and attr.type == ir.AttributeType.TENSOR and attr.value is not None:
                    total += int(attr.value.nbytes)
    return total


def _custom_signature(proto: onnx.ModelProto) -> list[tuple]:
    """(name, domain, op_type, inputs, outputs, serialised attributes) of every non-standard node."""

    def walk(graph: onnx.GraphProto):
        for node in graph.node:
            if node.domain not in ("", "ai.onnx"):
                yield (
                    node.name,
                    node.domain,
                    node.op_type,
                    tuple(node.input),
                    tuple(node.output),
                    tuple(a.SerializeToString(deterministic=True) for a in node.attribute),
                )
            for attr in node.attribute:
                if attr.type == onnx.AttributeProto.GRAPH:
                    yield from walk(attr.g)
                elif attr.type == onnx.AttributeProto.GRAPHS:
                    for sub in attr.graphs:
                        yield from walk(sub)

    return sorted(walk(proto.graph))


@dataclass
class OpsetUpgrade(QonnxPass, name="opset-upgrade"):
    """convert the ai.onnx opset to target with onnx.version_converter (custom ops carried through); refuses
    models above 1.8 GB of tensors"""

    target: int | None = None
    allow_downgrade: bool = False

    def call(self, model: ir.Model) -> PassResult:
        target = self._check_target(model)
        current = self._current(model)
        if current == target:
            return PassResult(model, False)
        size = tensor_bytes(model)
        if size > MAX_TENSOR_BYTES:
            raise BadInputError(
                f"opset-upgrade: the model holds {size / 1e9:.2f} GB of tensors; the ONNX version converter "
                f"needs the whole model as one protobuf (2 GiB limit), so models above "
                f"{MAX_TENSOR_BYTES / 1e9:.1f} GB are refused"
            )
        proto = ir.to_proto(model)
        before = _custom_signature(proto)
        try:
            converted = onnx.version_converter.convert_version(proto, target)
        except Exception as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise BadInputError(
                f"opset-upgrade: onnx's version converter failed from opset {current} to {target}: {first}"
            ) from exc
        after = _custom_signature(converted)
        if before != after:
            raise BadInputError(
                "opset-upgrade: the version converter changed or dropped custom-domain nodes; model left unchanged"
            )
        self._raise_ir_version(converted)
        new = ir.from_proto(converted)
        self._reattach_tensors(model, new)
        model.graph = new.graph
        model.ir_version = new.ir_version
        model.functions.clear()
        model.functions.update(new.functions)
        return PassResult(model, True)

    # -- helpers -----------------------------------------------------------------
    def _check_target(self, model: ir.Model) -> int:
        if self.target is None:
            raise BadInputError("opset-upgrade needs a target opset, e.g. opset-upgrade{target=18}")
        target = int(self.target)
        newest = onnx.defs.onnx_opset_version()
        if not 1 <= target <= newest:
            raise BadInputError(f"opset-upgrade: target {target} is outside 1..{newest} (this onnx package)")
        current = self._current(model)
        if target < current and not self.allow_downgrade:
            raise BadInputError(
                f"opset-upgrade: the model is at opset {current} > target {target}; "
                "set allow_downgrade=true to convert down"
            )
        return target

    @staticmethod
    def _current(model: ir.Model) -> int:
        current = opset_of(model, STANDARD)
        if not current:
            raise BadInputError("opset-upgrade: the model does not import the ai.onnx opset")
        return current

    @staticmethod
    def _raise_ir_version(proto: onnx.ModelProto) -> None:
        needed = onnx.helper.find_min_ir_version_for(list(proto.opset_import), ignore_unknown=True)
        if proto.ir_version < needed:
            proto.ir_version = needed

    @staticmethod
    def _reattach_tensors(old: ir.Model, new: ir.Model) -> None:
        """Put the original tensor objects back (no duplicate weights in memory, external data stays lazy)."""
        originals = {
            name: value.const_value for name, value in old.graph.initializers.items() if value.const_value is not None
        }
        for name, value in new.graph.initializers.items():
            tensor = originals.get(name)
            if tensor is None or value.const_value is None:
                continue
            if tensor.dtype == value.const_value.dtype and tuple(tensor.shape) == tuple(value.const_value.shape):
                value.const_value = tensor
