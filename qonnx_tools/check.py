"""``check``: validate a model file structurally and semantically, listing every problem.

The check works on the protobuf, so it reports what would make the IR loader fail
(values produced twice, cycles, inputs nobody produces) instead of stopping there.
It never allocates declared tensors and reads external data only for small constant
parameters whose location passed validation.

What is checked (``Finding`` severity ``error`` unless noted):

* everything ``validate.validate_proto`` refuses at load time: tensor data types, dims,
  sizes (``max_tensor_bytes``) and stored data; external data locations (no absolute
  path, no ``..``, nothing outside the model's directory), files, offsets and lengths;
  declared shapes without negative dimensions; inputs that nobody produces; values
  produced twice; graph outputs that do not exist; cycles; attribute types;
* duplicate node names;
* opset imports (unknown versions are warnings);
* standard ops: an operator of that name exists at the model's opset, input/output
  counts, required and unknown attributes, and per-node type/shape inference with
  the types known so far (so ``Add`` of a float and an int tensor is reported);
  declared types (value_info / graph outputs) that contradict the inferred ones;
* QONNX ops: input counts, attribute types and values (rounding mode known, flags 0/1,
  FloatQuant saturation consistent...), and constant parameters: bit widths integers
  >= 1 (no 1-bit narrow ranges, which hold only 0), <= 64; scales finite and > 0;
  zero-points finite and inside the integer range; Trunc ``in_bitwidth >= out_bitwidth``
  (an error for version 1, where a smaller in_bitwidth scales the values up; a warning
  for version 2, where in_bitwidth does not enter the arithmetic and Brevitas exports it);
  FloatQuant exponent/mantissa bit widths positive integers and ``max_val > 0``;
  MultiThreshold thresholds (C, T) matching X's channels; parameters that do not
  broadcast to X; quantizer outputs declared with a non-float type;
* ops of unknown domains are reported as warnings (they cannot be checked or executed), and so
  are the ops qonnx defines that this package does not implement (Im2Col, XnorPopcountMatMul...);
  any other op name in a QONNX domain is an error;
* ``qonnx_findings``: the QONNX-node part of these rules alone, which every command that
  transforms a model applies first (``model_io.load(..., legal_qonnx=True)``);
* whatever ``onnx.checker.check_model(full_check=True)`` reports, each as an error whose
  message starts with ``onnx.checker:`` (one per shape-inference error it lists), naming
  the node when onnx does. onnx stops at its first structural error (missing opset import,
  unsorted nodes, ...), so it reports at most that one, or the inference errors.
  What onnx does with the QONNX custom domains (qonnx.custom_op.general, .channels_last):
  the domain must be imported ("No opset import for domain ..." otherwise, from the checker
  and from shape inference alike); with the import, the checker validates such a node only
  structurally (names, attributes well-formed, topological order) since it knows no schema
  (``check_custom_domain`` stays off: with it every QONNX op would be "No Op registered");
  shape inference gives the node's outputs no type beyond their declared value_info and,
  from the first node without a schema on (in node order), drops the node-level inference
  errors of every later node: only type-constraint violations (``check_type``) still
  surface there. Our own rules above cover that part.
  A model whose proto cannot be serialised (2 GiB and more without external data) is not
  given to onnx.checker (a warning says so); a model with external data is checked from its
  file, so that onnx finds the data beside it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import onnx
import onnx.checker
import onnx.defs
import onnx.helper
import onnx.numpy_helper
import onnx.shape_inference

from qonnx_tools.domains import CHANNELS_LAST, ONNX_DOMAINS, QONNX, STANDARD, canonical_domain
from qonnx_tools.errors import InvalidAttributeError, InvalidDataTypeError, first_line
from qonnx_tools.model_io import _all_external_tensors
from qonnx_tools.validate import (
    DEFAULT_QONNX_OPSET,
    MAX_PROTO_FILE_BYTES,
    ERROR,
    WARNING,
    Finding,
    PathLike,
    ProtoValidator,
    max_tensor_bytes_default,
    node_label,
    onnx_schema,
    op_label,
    read_proto,
    topological_indices,
    validate_proto,
)

__all__ = ["Finding", "check_file", "check_proto", "ERROR", "WARNING"]

#: Constant parameters with more elements than this are not read (they are weights, not parameters).
MAX_PARAMETER_ELEMENTS = 1 << 20


#: Newest QONNX opset this package defines (Trunc v2).
_QONNX_MAX_OPSET = 2

_FLOAT_TYPES = frozenset(
    {
        onnx.TensorProto.FLOAT,
        onnx.TensorProto.DOUBLE,
        onnx.TensorProto.FLOAT16,
        onnx.TensorProto.BFLOAT16,
    }
)
_NUMERIC_KINDS = "iuf"


def check_file(path: PathLike, *, max_tensor_bytes: int | None = None) -> list[Finding]:
    """Every problem of the model file at ``path``.

    Raises ModelLoadError (exit 2) only when the file is no readable ONNX model at all
    (missing, empty, not a protobuf, unknown IR version); everything else is a Finding.
    """
    proto = read_proto(path)
    return check_proto(proto, path, max_tensor_bytes=max_tensor_bytes)


def check_proto(proto: onnx.ModelProto, path: PathLike, *, max_tensor_bytes: int | None = None) -> list[Finding]:
    """Every problem of a parsed model; ``path`` locates external data and names the file."""
    limit = max_tensor_bytes_default() if max_tensor_bytes is None else int(max_tensor_bytes)
    findings = list(validate_proto(proto, path, max_tensor_bytes=limit))
    findings += _Checker(proto, Path(path), limit).run()
    findings += onnx_checker_findings(proto, path)
    return _dedupe(findings)


#: Operators qonnx defines in its domains that this package does not implement (a model using
#: them is legal: they pass through transforms unchanged, with a warning). Any other name in
#: these domains is an error. From the custom_op.general and channels_last registries of qonnx 1.0
#: (and, for channels_last AveragePool/Concat/Resize, of qonnx's main branch).
QONNX_OPS_DEFINED_ELSEWHERE: dict[str, frozenset[str]] = {
    QONNX: frozenset({"DebugMarker", "GenericPartition", "Im2Col", "MaxPoolNHWC",
                      "QuantAvgPool2d", "XnorPopcountMatMul"}),
    CHANNELS_LAST: frozenset({"AveragePool", "Concat", "Resize"}),
}


#: What the warnings about nodes nobody here knows say happens to them in a transform.
PASSES_THROUGH = "passes through unchanged"


def qonnx_findings(proto: onnx.ModelProto, path: PathLike, *, max_tensor_bytes: int | None = None) -> list[Finding]:
    """The findings of ``qonnx check`` about QONNX nodes only: op names, input counts, attributes and
    constant parameters (bit widths, scales, zero-points, rounding modes...), plus a warning per node
    of a domain nobody here knows. What a transforming command refuses (errors) or names (warnings)
    before it changes a model; standard ops are left to the transform (it re-infers their types)."""
    limit = max_tensor_bytes_default() if max_tensor_bytes is None else int(max_tensor_bytes)
    found = _Checker(proto, Path(path), limit, qonnx_only=True).run()
    return _dedupe([f for f in found if f.node is not None])


#: Prefix of the messages of findings that onnx.checker reported.
ONNX_CHECKER = "onnx.checker: "


def onnx_checker_findings(proto: onnx.ModelProto, path: PathLike) -> list[Finding]:
    """What ``onnx.checker.check_model(full_check=True)`` reports about ``proto``, as error findings.

    The proto is checked as serialised bytes. When it holds external tensors, onnx resolves
    their files relative to the model's directory only when given a path, so the file at
    ``path`` is checked instead (it must be the file ``proto`` was read from); when there is
    no such file, the check is skipped with a warning. A proto too large to serialise
    (2 GiB and more: only possible for an in-memory model) is skipped with a warning too.
    """
    if any(True for _ in _all_external_tensors(proto)):
        if not Path(path).is_file():
            return [
                Finding(WARNING, f"{ONNX_CHECKER}not run: the model has external data and {path} is no file to find it beside")
            ]
        target: Any = str(path)
    else:
        size = proto.ByteSize()
        if size > MAX_PROTO_FILE_BYTES:
            return [
                Finding(
                    WARNING,
                    f"{ONNX_CHECKER}not run: the model serialises to {size} bytes, more than a protobuf can hold "
                    "(2 GiB); save it with external data and check the file",
                )
            ]
        target = proto.SerializeToString()
    try:
        onnx.checker.check_model(target, full_check=True)
    except Exception as exc:  # ValidationError, InferenceError, or onnx's own ValueError/RuntimeError
        return _onnx_findings(str(exc), _nodes_by_name(proto.graph))
    return []


_ONNX_NODE_CONTEXT = re.compile(r"Bad node spec for node\. Name: (.*?) OpType: (\S+)")
_ONNX_INFERENCE_NODE = re.compile(r"\(op_type:([^,)]+)(?:, node name: ([^)]*))?\):\s*")


def _onnx_findings(text: str, nodes: dict[str, onnx.NodeProto]) -> list[Finding]:
    """Findings from the text of onnx's exception: one per error of an "Inference error(s):" list, else one."""
    text = text.strip()
    _, listed, items = text.partition("Inference error(s):")
    if listed:
        return [_onnx_finding(line.strip(), nodes) for line in items.splitlines() if line.strip()]
    return [_onnx_finding(text, nodes)]


def _onnx_finding(text: str, nodes: dict[str, onnx.NodeProto]) -> Finding:
    """One onnx error as a Finding; the node comes from ``(op_type:X, node name: Y)`` or the
    checker's ``==> Context: Bad node spec for node. Name: Y OpType: X``."""
    name = op_type = ""
    match = _ONNX_INFERENCE_NODE.search(text)
    if match:
        op_type, name = match.group(1), (match.group(2) or "").strip()
        text = text[: match.start()] + text[match.end() :]
    else:
        text, _, context = text.partition("==> Context:")
        context_match = _ONNX_NODE_CONTEXT.search(context)
        if context_match:
            name, op_type = context_match.group(1).strip(), context_match.group(2)
        elif context.strip():
            text = f"{text} ({context})"
    message = " ".join(text.split())
    if message.startswith("No opset import for domain"):
        message += " (files written by qonnx-tools commands import every domain they use)"
    if name:
        node = nodes.get(name)
        return Finding(ERROR, ONNX_CHECKER + message, name, op_label(node) if node is not None else op_type)
    if op_type:
        message = f"{op_type} node without a name: {message}"
    return Finding(ERROR, ONNX_CHECKER + message)


def _nodes_by_name(graph: onnx.GraphProto) -> dict[str, onnx.NodeProto]:
    nodes: dict[str, onnx.NodeProto] = {}
    for node in _all_nodes(graph):
        if node.name:
            nodes.setdefault(node.name, node)
    return nodes


def errors(findings: Iterable[Finding]) -> list[Finding]:
    """The findings of severity ``error``."""
    return [f for f in findings if f.severity == ERROR]


def _dedupe(findings: list[Finding]) -> list[Finding]:
    seen: set[Finding] = set()
    out = []
    for finding in findings:
        if finding not in seen:
            seen.add(finding)
            out.append(finding)
    return out


# -- the checker --------------------------------------------------------------------------------


@dataclass
class _Scope:
    """What is known about the values of one graph (and the graphs enclosing it)."""

    types: dict[str, int] = field(default_factory=dict)  # elem_type (TensorProto enum), 0 = unknown
    shapes: dict[str, tuple] = field(default_factory=dict)  # dims: int, or str/None for symbolic
    declared: dict[str, int] = field(default_factory=dict)  # elem_type declared by value_info/outputs
    constants: dict[str, Any] = field(default_factory=dict)  # TensorProto or np.ndarray (Constant nodes)

    def child(self) -> "_Scope":
        return _Scope(dict(self.types), dict(self.shapes), {}, dict(self.constants))


class _Checker:
    """``qonnx_only``: check QONNX nodes only (their inputs, attributes and constant parameters),
    skipping the standard ops' inference, declared types and node names (what a transform fixes)."""

    def __init__(self, proto: onnx.ModelProto, path: Path, limit: int, *, qonnx_only: bool = False) -> None:
        self.proto = proto
        self.path = path
        self.qonnx_only = qonnx_only
        self.validator = ProtoValidator(proto, path, limit)
        self.findings: list[Finding] = []
        self.opsets: dict[str, int] = {}
        self._arrays: dict[int, np.ndarray | None] = {}

    # -- entry -------------------------------------------------------------------------------
    def run(self) -> list[Finding]:
        self.opset_findings()
        self.graph(self.proto.graph, _Scope(), "")
        return self.findings

    def add(self, message: str, node: str | None = None, op: str | None = None, severity: str = ERROR) -> None:
        self.findings.append(Finding(severity, message, node, op))

    def opset_findings(self) -> None:
        used = {canonical_domain(n.domain) for n in _all_nodes(self.proto.graph)}
        newest = onnx.defs.onnx_opset_version()
        for entry in self.proto.opset_import:
            domain = canonical_domain(entry.domain)
            version = int(entry.version)
            self.opsets[domain] = max(self.opsets.get(domain, 0), version)
            name = entry.domain or "ai.onnx"
            if version < 1:
                self.add(f"opset import {name} has invalid version {version}")
            elif domain == STANDARD and version > newest:
                self.add(
                    f"opset import ai.onnx version {version} is newer than onnx knows ({newest}); "
                    f"operators are checked at {newest}",
                    severity=WARNING,
                )
            elif domain == QONNX and version > _QONNX_MAX_OPSET:
                self.add(
                    f"opset import {name} version {version} is newer than the QONNX ops defined here "
                    f"({_QONNX_MAX_OPSET})",
                    severity=WARNING,
                )
        if QONNX in used and QONNX not in self.opsets:
            self.opsets[QONNX] = DEFAULT_QONNX_OPSET
        if STANDARD in used and STANDARD not in self.opsets:
            self.add("the model uses ai.onnx operators but imports no ai.onnx opset", severity=WARNING)
            self.opsets[STANDARD] = 1

    # -- graphs ------------------------------------------------------------------------------
    def graph(self, graph: onnx.GraphProto, scope: _Scope, prefix: str) -> None:
        for info in graph.input:  # graph inputs shadow enclosing values
            elem, dims = _value_info_type(info)
            scope.types[info.name] = elem
            if dims is not None:
                scope.shapes[info.name] = dims
            else:
                scope.shapes.pop(info.name, None)
            scope.constants.pop(info.name, None)
        for info in list(graph.value_info) + list(graph.output):
            elem, dims = _value_info_type(info)
            if elem and not scope.types.get(info.name):
                scope.types[info.name] = elem
            if dims is not None and info.name not in scope.shapes:
                scope.shapes[info.name] = dims
        for info in list(graph.value_info) + list(graph.output):
            elem, _ = _value_info_type(info)
            if elem:
                scope.declared[info.name] = elem
        for tensor in graph.initializer:
            if tensor.name:
                scope.types[tensor.name] = tensor.data_type
                scope.shapes[tensor.name] = tuple(tensor.dims)
                scope.constants[tensor.name] = tensor

        labels = [node_label(node, i, prefix) for i, node in enumerate(graph.node)]
        by_name: dict[str, list[int]] = {}
        for i, node in enumerate(graph.node):
            if node.name:
                by_name.setdefault(node.name, []).append(i)
        for name, indices in by_name.items():
            if len(indices) > 1 and not self.qonnx_only:
                self.add(
                    f"node name {name!r} is used by {len(indices)} nodes (#{', #'.join(map(str, indices))})",
                    labels[indices[1]],
                    op_label(graph.node[indices[1]]),
                )

        for i in topological_indices(graph):
            node = graph.node[i]
            label = labels[i]
            try:
                self.node(node, label, scope)
            except (InvalidAttributeError, InvalidDataTypeError) as exc:
                self.add(_strip_where(str(exc)), label, op_label(node))
            for attr in node.attribute:
                subgraphs = [attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs)
                for sub in subgraphs:
                    self.graph(sub, scope.child(), label + "/")

    # -- nodes -------------------------------------------------------------------------------
    def node(self, node: onnx.NodeProto, label: str, scope: _Scope) -> None:
        domain = canonical_domain(node.domain)
        if domain == STANDARD and node.op_type == "Constant":
            self.constant_node(node, scope)
        if domain in ONNX_DOMAINS:
            if not self.qonnx_only:
                self.standard_node(node, label, domain, scope)
        elif domain in (QONNX, CHANNELS_LAST):
            self.qonnx_node(node, label, domain, scope)
        else:
            self.add(
                f"unknown operator {node.domain}:{node.op_type}: it cannot be checked or executed here "
                f"(a transform {PASSES_THROUGH})",
                label,
                op_label(node),
                WARNING,
            )

    def standard_node(self, node: onnx.NodeProto, label: str, domain: str, scope: _Scope) -> None:
        op = op_label(node)
        opset = min(self.opsets.get(domain, 1), onnx.defs.onnx_opset_version()) if domain == STANDARD else self.opsets.get(domain, 1)
        schema = onnx_schema(node.op_type, domain, opset)
        if schema is None:
            self.add(f"no operator {domain or 'ai.onnx'}.{node.op_type} exists at opset {opset}", label, op)
            return
        if schema.deprecated:
            self.add(f"{node.op_type} is deprecated at opset {opset}", label, op, WARNING)
        before = len(self.findings)
        n_in, n_out = len(node.input), len(node.output)
        if not schema.min_input <= n_in <= schema.max_input:
            self.add(f"has {n_in} inputs; {node.op_type}-{schema.since_version} takes {_range(schema.min_input, schema.max_input)}", label, op)
        if not schema.min_output <= n_out <= schema.max_output:
            self.add(f"has {n_out} outputs; {node.op_type}-{schema.since_version} gives {_range(schema.min_output, schema.max_output)}", label, op)
        present = {a.name for a in node.attribute}
        for name, attr in schema.attributes.items():
            if attr.required and name not in present:
                self.add(f"required attribute {name!r} is missing", label, op)
        for name in present - set(schema.attributes):
            self.add(f"attribute {name!r} is not defined for {node.op_type}-{schema.since_version}", label, op)
        if len(self.findings) == before:  # inference would repeat the schema problems found above
            self.infer_standard(node, label, schema, scope)

    def infer_standard(self, node: onnx.NodeProto, label: str, schema, scope: _Scope) -> None:
        """Per-node onnx type/shape inference with the known input types (all must be known)."""
        if any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in node.attribute):
            return  # If/Loop/Scan: their bodies are checked on their own
        names = [n for n in node.input if n]
        if any(not scope.types.get(n) for n in names):
            return
        types = {n: _type_proto(scope.types[n], scope.shapes.get(n)) for n in names}
        data = {}
        for n in names:
            tensor = scope.constants.get(n)
            if isinstance(tensor, onnx.TensorProto) and _numel(tensor.dims) <= 1024 and self.tensor_ok(tensor):
                if tensor.data_location != onnx.TensorProto.EXTERNAL:
                    data[n] = tensor
        opsets = [onnx.helper.make_opsetid(d, v) for d, v in self.opsets.items() if d in ONNX_DOMAINS]
        try:
            inferred = onnx.shape_inference.infer_node_outputs(schema, node, types, data, opset_imports=opsets)
        except Exception as exc:  # onnx's inference is the validator here: its complaint is the finding
            self.add(f"type/shape inference fails: {first_line(exc)}", label, op_label(node))
            return
        for name, type_proto in inferred.items():
            if not name or not type_proto.HasField("tensor_type"):
                continue
            elem = type_proto.tensor_type.elem_type
            self.output_type(node, label, name, elem, scope)
            if type_proto.tensor_type.HasField("shape") and name not in scope.shapes:
                scope.shapes[name] = _dims(type_proto.tensor_type.shape)

    def output_type(self, node: onnx.NodeProto, label: str, name: str, elem: int, scope: _Scope) -> None:
        """Compare an output's computed element type with its declaration, then record it."""
        if not elem:
            return
        declared = scope.declared.get(name)
        if declared and declared != elem:
            self.add(
                f"output {name!r} is declared {_type_name(declared)} but {node.op_type} produces {_type_name(elem)}",
                label,
                op_label(node),
            )
        scope.types[name] = elem

    def constant_node(self, node: onnx.NodeProto, scope: _Scope) -> None:
        if len(node.output) != 1 or len(node.attribute) != 1:
            return
        attr = node.attribute[0]
        A = onnx.AttributeProto
        value: Any = None
        if attr.name == "value" and attr.type == A.TENSOR:
            value = attr.t
            scope.types[node.output[0]] = attr.t.data_type
            scope.shapes[node.output[0]] = tuple(attr.t.dims)
        elif attr.name == "value_float" and attr.type == A.FLOAT:
            value = np.array(attr.f, dtype=np.float32)
        elif attr.name == "value_floats" and attr.type == A.FLOATS:
            value = np.array(list(attr.floats), dtype=np.float32)
        elif attr.name == "value_int" and attr.type == A.INT:
            value = np.array(attr.i, dtype=np.int64)
        elif attr.name == "value_ints" and attr.type == A.INTS:
            value = np.array(list(attr.ints), dtype=np.int64)
        if value is not None and node.output[0]:
            scope.constants[node.output[0]] = value

    # -- QONNX ops ----------------------------------------------------------------------------
    def qonnx_node(self, node: onnx.NodeProto, label: str, domain: str, scope: _Scope) -> None:
        from qonnx_tools import ops

        op_name = op_label(node)
        version = self.opsets.get(domain) or DEFAULT_QONNX_OPSET
        op = ops.get_op(domain, node.op_type, version)
        if op is None:
            if node.op_type in QONNX_OPS_DEFINED_ELSEWHERE.get(domain, ()):
                self.add(
                    f"{node.op_type} is a qonnx operator this package does not implement: it {PASSES_THROUGH} "
                    "(unchecked) and cannot be executed here",
                    label,
                    op_name,
                    WARNING,
                )
            else:
                known = sorted({op.name for op in ops.all_ops() if op.domain == domain}
                               | set(QONNX_OPS_DEFINED_ELSEWHERE.get(domain, ()))
                               | ({"Quant"} if domain == QONNX else set()))  # IntQuant's first name
                self.add(f"no operator {node.op_type} exists in the QONNX domain {domain} "
                         f"(it has {', '.join(known)})", label, op_name)
            return
        where = f"node {label!r} ({op_name})"
        op.check_inputs(len(node.input), where)
        for spec, name in zip(op.inputs, node.input):
            if not name and not spec.optional:
                self.add(f"required input {spec.name!r} is empty", label, op_name)
        attrs = op.resolve_attributes(_decode_attributes(node), where)
        params = _Params(self, node, label, op_name, scope).readable(op)
        x_shape = scope.shapes.get(node.input[0]) if node.input else None
        for problem in op.check_params(attrs, params, x_shape):
            self.add(problem.message, label, op_name, problem.severity)
        x = node.input[0] if node.input else ""
        x_type = scope.types.get(x, 0)
        if op.name in ("IntQuant", "BipolarQuant", "Trunc", "FloatQuant", "MultiThreshold"):
            if x_type and x_type not in _FLOAT_TYPES:
                self.add(
                    f"input X {x!r} is {_type_name(x_type)}; {op.name} computes in float32 and outputs float",
                    label,
                    op_name,
                    WARNING,
                )
            out_type = onnx.TensorProto.FLOAT
            if op.name != "MultiThreshold" and x_type in _FLOAT_TYPES:
                out_type = x_type
        else:  # channels-last ops keep X's type
            out_type = x_type
        for name in node.output[:1]:
            if name and not self.qonnx_only:
                self.output_type(node, label, name, out_type, scope)
                if op.name != "MultiThreshold" and x in scope.shapes and name not in scope.shapes and domain == QONNX:
                    scope.shapes[name] = scope.shapes[x]

    # -- constants ----------------------------------------------------------------------------
    def tensor_ok(self, tensor: onnx.TensorProto) -> bool:
        return not any(True for _ in self.validator.tensor(tensor, "tensor"))

    def array(self, name: str, scope: _Scope) -> np.ndarray | None:
        """The value of a small constant (initializer or Constant node), or None."""
        value = scope.constants.get(name)
        if value is None:
            return None
        if isinstance(value, np.ndarray):
            return value
        key = id(value)
        if key not in self._arrays:
            self._arrays[key] = self._read(value)
        return self._arrays[key]

    def _read(self, tensor: onnx.TensorProto) -> np.ndarray | None:
        if _numel(tensor.dims) > MAX_PARAMETER_ELEMENTS or not self.tensor_ok(tensor):
            return None
        try:
            return np.asarray(onnx.numpy_helper.to_array(tensor, base_dir=str(self.path.parent)))
        except Exception:  # a data type numpy cannot hold; the tensor itself passed validation
            return None


# -- constant parameters of QONNX ops -------------------------------------------------------------


class _Params:
    """One QONNX node's constant parameter inputs as the op's ``check_params`` takes them; inputs
    that are no numbers (declared non-numeric, empty) are reported here, as they name the value."""

    def __init__(self, checker: _Checker, node: onnx.NodeProto, label: str, op: str, scope: _Scope) -> None:
        self.checker = checker
        self.node = node
        self.label = label
        self.op = op
        self.scope = scope

    def error(self, message: str, severity: str = ERROR) -> None:
        self.checker.add(message, self.label, self.op, severity)

    def name(self, index: int) -> str:
        return self.node.input[index] if index < len(self.node.input) else ""

    def value(self, index: int, what: str) -> np.ndarray | None:
        """The constant value of input ``index`` (None when not constant or not numeric: reported)."""
        name = self.name(index)
        if not name:
            return None
        elem = self.scope.types.get(name, 0)
        if elem in (onnx.TensorProto.STRING, onnx.TensorProto.BOOL):
            self.error(f"{what} {name!r} must be numeric, got {_type_name(elem)}")
            return None
        arr = self.checker.array(name, self.scope)
        if arr is None:
            return None
        if arr.dtype.kind not in _NUMERIC_KINDS:
            self.error(f"{what} {name!r} must be numeric, got {arr.dtype}")
            return None
        if arr.size == 0:
            self.error(f"{what} {name!r} is empty")
            return None
        return arr

    def readable(self, op: Any) -> dict[str, np.ndarray]:
        """input name -> constant value, for the op's ``parameter_inputs`` that are constant and numeric."""
        out: dict[str, np.ndarray] = {}
        for index, spec in enumerate(op.inputs):
            if spec.name in op.parameter_inputs():
                arr = self.value(index, spec.name)
                if arr is not None:
                    out[spec.name] = arr
        return out


# -- helpers ------------------------------------------------------------------------------------


def _all_nodes(graph: onnx.GraphProto) -> Iterable[onnx.NodeProto]:
    for node in graph.node:
        yield node
        for attr in node.attribute:
            subgraphs = [attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs)
            for sub in subgraphs:
                yield from _all_nodes(sub)


def _value_info_type(info: onnx.ValueInfoProto) -> tuple[int, tuple | None]:
    if not info.type.HasField("tensor_type"):
        return 0, None
    tensor_type = info.type.tensor_type
    dims = _dims(tensor_type.shape) if tensor_type.HasField("shape") else None
    return tensor_type.elem_type, dims


def _dims(shape: onnx.TensorShapeProto) -> tuple:
    return tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in shape.dim)


def _type_proto(elem: int, dims: tuple | None) -> onnx.TypeProto:
    if dims is None:
        return onnx.helper.make_tensor_type_proto(elem, None)
    return onnx.helper.make_tensor_type_proto(elem, [d if isinstance(d, (int, str)) else None for d in dims])


def _type_name(elem: int) -> str:
    try:
        return onnx.TensorProto.DataType.Name(elem)
    except ValueError:
        return str(elem)


def _numel(dims: Sequence[int]) -> int:
    n = 1
    for d in dims:
        n *= max(int(d), 0)
    return n


def _range(lo: int, hi: int) -> str:
    if hi >= 2**31 - 1:
        return f"at least {lo}"
    return str(lo) if lo == hi else f"{lo} to {hi}"


def _decode_attributes(node: onnx.NodeProto) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for attr in node.attribute:
        try:
            value = onnx.helper.get_attribute_value(attr)
        except Exception:  # an attribute of no valid type: reported by validate_proto
            continue
        if isinstance(value, bytes):
            value = value.decode("utf-8", errors="replace")
        elif isinstance(value, list):
            value = tuple(v.decode("utf-8", errors="replace") if isinstance(v, bytes) else v for v in value)
        out[attr.name] = value
    return out


def _strip_where(message: str) -> str:
    """Drop the ``node '...' (Op): `` prefix of an op-module error (the Finding names the node)."""
    if message.startswith("node ") and "): " in message:
        return message.split("): ", 1)[1]
    return message


