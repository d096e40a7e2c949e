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

**Weights are not shown to the converter:** main-graph initializers above
``ELIDE_BYTES`` (64 KiB) go in as placeholders (external data never read), so
neither their bytes nor the protobuf's 2 GiB limit matter; the adapters rewrite
attributes and small constant inputs only. After conversion the original tensor
objects (including lazily loaded external data) are put back on the converted
model's initializers of the same name, type and shape; a placeholder that does
not come back that way is an error and the model is left unchanged. What the
converter must see (small initializers, Constant attributes, subgraphs) may not
exceed ``MAX_TENSOR_BYTES`` (1.8 GB): refused with a BadInputError before
anything is serialised.

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


#: Initializers of the main graph above this size are shown to the converter as placeholders (external data
#: that is never read): its adapters rewrite attributes and small constant inputs (shapes, axes, scales),
#: never weights, and serialising the weights twice was most of its time (VGG-19: 9 of 10 s).
ELIDE_BYTES = 64 * 1024


def _elide_weights(model: ir.Model) -> dict[ir.Value, ir.TensorProtocol]:
    """Swap every large main-graph initializer for a placeholder; returns the originals to put back."""
    elided = {}
    for name, value in model.graph.initializers.items():
        tensor = value.const_value
        if tensor is not None and tensor.nbytes > ELIDE_BYTES:
            elided[value] = tensor
            value.const_value = ir.ExternalTensor("qonnx-tools-elided-weight", 0, tensor.nbytes, tensor.dtype,
                                                  shape=tensor.shape, name=name)
    return elided


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
        elided = _elide_weights(model)
        try:
            size = tensor_bytes(model) - sum(int(t.nbytes) for t in elided.values())  # placeholders weigh nothing
            if size > MAX_TENSOR_BYTES:
                raise BadInputError(
                    f"opset-upgrade: the model holds {size / 1e9:.2f} GB of tensors the converter must see; the "
                    f"ONNX version converter needs them in one protobuf (2 GiB limit), so models above "
                    f"{MAX_TENSOR_BYTES / 1e9:.1f} GB are refused"
                )
            proto = ir.to_proto(model)
        finally:
            for value, tensor in elided.items():
                value.const_value = tensor
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
        restored = self._reattach_tensors(model, new)
        lost = sorted(v.name for v in elided if v.name not in restored)
        if lost:  # an adapter dropped, renamed or reshaped a weight it was shown only as a placeholder
            raise BadInputError(f"opset-upgrade: the version converter changed weight {lost[0]!r}; model left unchanged")
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
    def _reattach_tensors(old: ir.Model, new: ir.Model) -> set[str]:
        """Put the original tensor objects back (no duplicate weights in memory, external data stays lazy);
        returns the names put back."""
        originals = {
            name: value.const_value for name, value in old.graph.initializers.items() if value.const_value is not None
        }
        restored = set()
        for name, value in new.graph.initializers.items():
            tensor = originals.get(name)
            if tensor is None or value.const_value is None:
                continue
            if tensor.dtype == value.const_value.dtype and tuple(tensor.shape) == tuple(value.const_value.shape):
                value.const_value = tensor
                restored.add(name)
        return restored
