"""Validating a model file before (or without) building the IR.

``read_proto`` parses a file (external data is not read) and checks its header;
``validate_proto`` lists, as Findings, every problem that makes a parsed model unsafe or
impossible to load: files that are empty, not protobuf, truncated, of an unknown IR version,
or that declare tensors beyond ``max_tensor_bytes``, point external data outside the model's
directory (absolute paths, ``..``, symlinks), at missing or short files, or whose graph has
cycles, values produced twice or inputs nobody produces. ``model_io.load`` refuses a file
with an error finding (one ModelLoadError line naming the file and the node or tensor);
``check`` lists them all. External data files are only stat'ed here; nothing reads them
before their location is accepted.

``topological_indices`` and ``find_cycle`` order the nodes of a GraphProto (one Kahn sort);
``graph_order.topological_order`` does the same for an onnx_ir graph.
"""

from __future__ import annotations

import math
import os
import stat
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Iterator

import onnx
import onnx.defs
import onnx.helper

from qonnx_tools._ir import ir
from qonnx_tools.domains import CHANNELS_LAST, QONNX, STANDARD, canonical_domain
from qonnx_tools.errors import BadInputError, ModelLoadError, first_line

PathLike = str | os.PathLike

#: Opset assumed for the QONNX domain when a file uses its ops without importing it
#: (Brevitas' old ``onnx.brevitas`` exports); version 1 is the semantics those files had.
DEFAULT_QONNX_OPSET = 1

#: Largest tensor (initializer, constant attribute, statically shaped value) a file may declare.
DEFAULT_MAX_TENSOR_BYTES = 4 * 2**30

#: Environment variable overriding DEFAULT_MAX_TENSOR_BYTES for every command (bytes).
MAX_TENSOR_BYTES_ENV = "QONNX_TOOLS_MAX_TENSOR_BYTES"

#: Protobuf cannot parse a message of 2 GiB or more; larger files are refused before reading.
MAX_PROTO_FILE_BYTES = 2**31 - 1

ERROR, WARNING = "error", "warning"


@dataclass(frozen=True)
class Finding:
    """One problem of a model file: severity, the node (label) and op involved, and a message.

    ``message`` names the tensor/value concerned; ``describe()`` adds the node.
    """

    severity: str
    message: str
    node: str | None = None
    op: str | None = None

    def describe(self) -> str:
        if self.node is None:
            return self.message
        return f"node {self.node!r} ({self.op}): {self.message}"

    def to_dict(self) -> dict[str, str | None]:
        return {"severity": self.severity, "node": self.node, "op": self.op, "message": self.message}


def max_tensor_bytes_default() -> int:
    """DEFAULT_MAX_TENSOR_BYTES, or the value of $QONNX_TOOLS_MAX_TENSOR_BYTES when set."""
    text = os.environ.get(MAX_TENSOR_BYTES_ENV, "").strip()
    if not text:
        return DEFAULT_MAX_TENSOR_BYTES
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 1:
        raise BadInputError(f"${MAX_TENSOR_BYTES_ENV}={text!r}: expected a positive number of bytes")
    return value


def read_proto(path: PathLike) -> onnx.ModelProto:
    """Parse a model file (external data is not read) and check its header.

    ModelLoadError naming the file for: missing/non-regular, empty or > 2 GiB files,
    bytes that are not a ModelProto, no ir_version, an IR version newer than onnx's,
    no graph.
    """
    path = Path(path)
    try:
        info = path.stat()
    except (OSError, ValueError):
        raise ModelLoadError(f"{path}: no such file") from None
    if not stat.S_ISREG(info.st_mode):
        raise ModelLoadError(f"{path}: not a regular file")
    if info.st_size == 0:
        raise ModelLoadError(f"{path}: empty file, not an ONNX model")
    if info.st_size > MAX_PROTO_FILE_BYTES:
        raise ModelLoadError(
            f"{path}: {info.st_size} bytes is more than a protobuf file can hold (2 GiB); "
            "large models keep their weights in external data"
        )
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # DecodeError, ParseError, UnicodeDecodeError, RecursionError...
        raise ModelLoadError(f"{path}: not a readable ONNX model ({first_line(exc)})") from exc
    if not proto.ir_version or proto.ir_version < 1:
        raise ModelLoadError(f"{path}: not an ONNX model (no ir_version; empty or foreign file?)")
    if proto.ir_version > onnx.IR_VERSION:
        raise ModelLoadError(
            f"{path}: IR version {proto.ir_version} is newer than this onnx package supports ({onnx.IR_VERSION})"
        )
    if not proto.HasField("graph"):
        raise ModelLoadError(f"{path}: not an ONNX model (no graph)")
    field = _non_text_field(proto, "model")
    if field is not None:
        raise ModelLoadError(f"{path}: not a readable ONNX model ({field} is not valid UTF-8 text)")
    return proto


def _non_text_field(message, where: str) -> str | None:
    """The first string field holding bytes that are not UTF-8 (protobuf hands those over as
    ``bytes`` for proto2 messages such as ONNX's), as a path like ``model.graph.node[3].name``."""
    from google.protobuf.descriptor import FieldDescriptor

    for field, value in message.ListFields():
        repeated = field.is_repeated
        if field.type == FieldDescriptor.TYPE_STRING:
            for i, item in enumerate(value if repeated else [value]):
                if not isinstance(item, str):
                    return f"{where}.{field.name}" + (f"[{i}]" if repeated else "")
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            if field.message_type.GetOptions().map_entry:
                continue
            for i, item in enumerate(value if repeated else [value]):
                found = _non_text_field(item, f"{where}.{field.name}" + (f"[{i}]" if repeated else ""))
                if found is not None:
                    return found
    return None


def validate_proto(
    proto: onnx.ModelProto, path: PathLike, *, max_tensor_bytes: int | None = None
) -> Iterator[Finding]:
    """Every problem that makes ``proto`` unsafe or impossible to load, lazily, in file order.

    Checked without allocating declared tensors or reading external data files:

    * tensors (initializers, sparse initializers, tensor attributes, subgraphs included):
      known data type, non-negative dims, declared size <= ``max_tensor_bytes``, stored
      data consistent with the dims; external data with a relative location inside the
      model's directory (no absolute path, no ``..``, no symlink out), an existing regular
      file, integer offset/length, and ``offset + length`` within the file;
    * declared values (graph inputs/outputs, value_info): known element type, no negative
      dimension, static size <= ``max_tensor_bytes``;
    * names: every node input is produced by a node, a graph input or an initializer
      (of this graph or an enclosing one); no value is produced twice; graph outputs exist;
      initializers are named and unique;
    * the graph has no cycle; attribute types match the operator's schema (ai.onnx) or
      definition (QONNX ops).
    """
    limit = max_tensor_bytes_default() if max_tensor_bytes is None else int(max_tensor_bytes)
    checker = ProtoValidator(proto, Path(path), limit)
    if not proto.graph.output:
        yield Finding(ERROR, f"graph {proto.graph.name!r} has no outputs")
    yield from checker.graph(proto.graph, frozenset(), "")


class ProtoValidator:
    """State of one validate_proto run (opsets, the model directory, file sizes)."""

    def __init__(self, proto: onnx.ModelProto, path: Path, limit: int) -> None:
        self.limit = limit
        self.base_dir = path.parent
        self.base_real = os.path.realpath(self.base_dir)
        opsets: dict[str, int] = {}
        for entry in proto.opset_import:
            domain = canonical_domain(entry.domain)
            opsets[domain] = max(opsets.get(domain, 0), int(entry.version))
        self.opsets = opsets
        self._files: dict[str, tuple[str | None, int]] = {}

    # -- graphs ----------------------------------------------------------------------------
    def graph(self, graph: onnx.GraphProto, outer: frozenset[str], prefix: str) -> Iterator[Finding]:
        where = f"subgraph {graph.name!r}: " if prefix else ""
        for kind, infos in (("graph input", graph.input), ("graph output", graph.output), ("value_info", graph.value_info)):
            for info in infos:
                yield from self.value_info(info, f"{where}{kind} {info.name!r}")

        inputs: set[str] = set()
        for info in graph.input:
            if info.name in inputs:
                yield Finding(ERROR, f"{where}graph input {info.name!r} is declared twice")
            inputs.add(info.name)
        initializers: set[str] = set()
        for i, tensor in enumerate(graph.initializer):
            if not tensor.name:
                yield Finding(ERROR, f"{where}initializer #{i} has no name")
                continue
            if tensor.name in initializers:
                yield Finding(ERROR, f"{where}initializer {tensor.name!r} is defined twice")
            initializers.add(tensor.name)
            yield from self.tensor(tensor, f"{where}initializer {tensor.name!r}")
        for i, sparse in enumerate(graph.sparse_initializer):
            name = sparse.values.name or f"#{i}"
            yield from self.tensor(sparse.values, f"{where}sparse initializer {name!r} (values)")
            yield from self.tensor(sparse.indices, f"{where}sparse initializer {name!r} (indices)")
            initializers.add(sparse.values.name)

        labels = [node_label(node, i, prefix) for i, node in enumerate(graph.node)]
        producers: dict[str, int] = {}
        for i, node in enumerate(graph.node):
            for out in node.output:
                if not out:
                    continue
                if out in producers:
                    other = labels[producers[out]]
                    yield Finding(ERROR, f"output {out!r} is already produced by node {other!r}", labels[i], op_label(node))
                elif out in inputs:
                    yield Finding(ERROR, f"output {out!r} is also a graph input (produced twice)", labels[i], op_label(node))
                elif out in initializers:
                    yield Finding(ERROR, f"output {out!r} is also an initializer (produced twice)", labels[i], op_label(node))
                else:
                    producers[out] = i

        scope = outer | inputs | initializers | producers.keys()
        for i, node in enumerate(graph.node):
            for name in node.input:
                if name and name not in scope:
                    yield Finding(
                        ERROR,
                        f"input {name!r} is produced by no node and is neither a graph input nor an initializer",
                        labels[i],
                        op_label(node),
                    )
            yield from self.node_attributes(node, labels[i], scope)
        for info in graph.output:
            if info.name not in scope:
                yield Finding(ERROR, f"{where}graph output {info.name!r} is produced by no node")

        cycle = find_cycle(graph, producers)
        if cycle:
            path = " -> ".join(repr(labels[i]) for i in cycle + [cycle[0]])
            first = graph.node[cycle[0]]
            yield Finding(ERROR, f"{where}graph {graph.name!r} has a cycle: {path}", labels[cycle[0]], op_label(first))

    # -- nodes -----------------------------------------------------------------------------
    def node_attributes(self, node: onnx.NodeProto, label: str, scope: frozenset[str]) -> Iterator[Finding]:
        op = op_label(node)
        expected = self.attribute_types(node)
        A = onnx.AttributeProto
        for attr in node.attribute:
            if attr.type == A.UNDEFINED or attr.type not in A.AttributeType.values():
                yield Finding(ERROR, f"attribute {attr.name!r} has no valid type ({attr.type})", label, op)
                continue
            want = expected.get(attr.name)
            if want is not None and attr.type not in want:
                names = " or ".join(A.AttributeType.Name(t) for t in sorted(want))
                yield Finding(
                    ERROR,
                    f"attribute {attr.name!r} must be {names}, got {A.AttributeType.Name(attr.type)}",
                    label,
                    op,
                )
                continue
            if attr.type in (A.STRING, A.STRINGS) and not _utf8(attr):
                yield Finding(ERROR, f"attribute {attr.name!r} is not valid UTF-8 text", label, op)
            elif attr.type == A.TENSOR:
                yield from self.tensor(attr.t, f"attribute {attr.name!r} tensor", label, op)
            elif attr.type == A.TENSORS:
                for k, tensor in enumerate(attr.tensors):
                    yield from self.tensor(tensor, f"attribute {attr.name!r} tensor #{k}", label, op)
            elif attr.type == A.SPARSE_TENSOR:
                yield from self.tensor(attr.sparse_tensor.values, f"attribute {attr.name!r} (values)", label, op)
                yield from self.tensor(attr.sparse_tensor.indices, f"attribute {attr.name!r} (indices)", label, op)
            elif attr.type == A.GRAPH:
                yield from self.graph(attr.g, scope, label + "/")
            elif attr.type == A.GRAPHS:
                for sub in attr.graphs:
                    yield from self.graph(sub, scope, label + "/")

    def attribute_types(self, node: onnx.NodeProto) -> dict[str, set[int]]:
        """Attribute name -> allowed AttributeProto types, from the op's schema/definition."""
        A = onnx.AttributeProto
        domain = canonical_domain(node.domain)
        if domain in _ONNX_SCHEMA_DOMAINS:
            schema = onnx_schema(node.op_type, domain, self.opsets.get(domain, 1 if domain == STANDARD else 0))
            if schema is None:
                return {}
            allowed: dict[str, set[int]] = {}
            for name, attr in schema.attributes.items():
                kind = int(attr.type)
                allowed[name] = {kind, A.INT} if kind == A.FLOAT else {kind}
            return allowed
        if domain in (QONNX, CHANNELS_LAST):
            from qonnx_tools import ops

            op = ops.get_op(domain, node.op_type, self.opsets.get(domain) or DEFAULT_QONNX_OPSET)
            if op is None:
                return {}
            kinds = {int: {A.INT}, float: {A.FLOAT, A.INT}, str: {A.STRING}, tuple: {A.INTS, A.FLOATS, A.STRINGS}}
            return {spec.name: kinds[spec.kind] for spec in op.attributes if spec.kind in kinds}
        return {}

    # -- declared values -------------------------------------------------------------------
    def value_info(self, info: onnx.ValueInfoProto, what: str) -> Iterator[Finding]:
        if not info.type.HasField("tensor_type"):
            return
        tensor_type = info.type.tensor_type
        elem = tensor_type.elem_type
        bits = None
        if elem:
            dtype = _data_type(elem)
            if dtype is None:
                yield Finding(ERROR, f"{what} declares unknown element type {elem}")
                return
            bits = _bitwidth(dtype)
        if not tensor_type.HasField("shape"):
            return
        dims = [d.dim_value if d.HasField("dim_value") else None for d in tensor_type.shape.dim]
        shown = _dims_text(d if d is not None else "?" for d in dims)
        if any(d is not None and d < 0 for d in dims):
            yield Finding(ERROR, f"{what} declares a negative dimension in shape {shown}")
            return
        if bits is not None:
            span = (_span(d for d in dims if d is not None) * bits + 7) // 8
            if span > self.limit:
                yield Finding(ERROR, f"{what} declares shape {shown}{_size_text(dims, span)}, above the limit of "
                                     f"{_bytes_text(self.limit)} (max_tensor_bytes)")

    # -- tensors ---------------------------------------------------------------------------
    def tensor(self, tensor: onnx.TensorProto, what: str, node: str | None = None, op: str | None = None) -> Iterator[Finding]:
        def problem(message: str) -> Finding:
            return Finding(ERROR, f"{what} {message}", node, op)

        dtype = _data_type(tensor.data_type)
        if dtype is None or dtype == ir.DataType.UNDEFINED:
            yield problem(f"has unknown data type {tensor.data_type}")
            return
        dims = list(tensor.dims)
        if any(d < 0 for d in dims):
            yield problem(f"has a negative dimension in shape {_dims_text(dims)}")
            return
        numel = math.prod(dims)
        bits = _bitwidth(dtype)
        nbytes = None if bits is None else (numel * bits + 7) // 8
        span = _span(dims) * (bits if bits is not None else 8) // 8
        if span > self.limit:
            yield problem(
                f"declares shape {_dims_text(dims)} {dtype.name}{_size_text(dims, span)}, above the limit of "
                f"{_bytes_text(self.limit)} (max_tensor_bytes)"
            )
            return
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            if nbytes is None:
                yield problem(f"of type {dtype.name} cannot be stored as external data")
                return
            yield from (problem(m) for m in self.external(tensor, nbytes))
            return
        if tensor.HasField("raw_data"):
            size = len(tensor.raw_data)
            if nbytes is None:
                yield problem(f"of type {dtype.name} cannot use raw_data")
            elif size != nbytes and not (bits not in _EXACT_BITS and numel <= size <= nbytes + numel):
                yield problem(f"holds {size} bytes of data but its shape {_dims_text(dims)} needs {nbytes}")
            return
        try:
            field = onnx.helper.tensor_dtype_to_field(tensor.data_type)
        except Exception:
            yield problem(f"of type {dtype.name} has no storage field")
            return
        count = len(getattr(tensor, field))
        if bits is not None and bits < 8:
            expected = nbytes
        elif dtype in (ir.DataType.COMPLEX64, ir.DataType.COMPLEX128):
            expected = 2 * numel
        else:
            expected = numel
        if count != expected:
            if count == 0:
                yield problem(f"holds no data but its shape {_dims_text(dims)} needs {expected} values")
            else:
                yield problem(f"holds {count} values but its shape {_dims_text(dims)} needs {expected}")

    def external(self, tensor: onnx.TensorProto, nbytes: int) -> Iterator[str]:
        """Problems of an external tensor's location/offset/length (the data file is only stat'ed)."""
        entries = {entry.key: entry.value for entry in tensor.external_data}
        location = entries.get("location", "")
        if not location:
            yield "is stored as external data without a location"
            return
        where = f"has external data {location!r}"
        if "\x00" in location:
            yield f"{where}: the location contains a NUL byte (refused)"
            return
        parts = PurePosixPath(location.replace("\\", "/"))
        if os.path.isabs(location) or parts.is_absolute() or PureWindowsPath(location).drive:
            yield f"{where}: an absolute path (refused: external data must be inside the model's directory)"
            return
        if ".." in parts.parts:
            yield f"{where}: the location contains '..' (refused: path traversal)"
            return
        file_error, file_size = self.data_file(location)
        if file_error:
            yield f"{where}: {file_error}"
            return
        numbers: dict[str, int] = {}
        for key in ("offset", "length"):
            if key not in entries:
                continue
            try:
                numbers[key] = int(entries[key])
            except ValueError:
                numbers[key] = -1
            if numbers[key] < 0:
                yield f"{where}: {key} {entries[key]!r} is not a non-negative integer"
                return
        offset = numbers.get("offset", 0)
        length = numbers.get("length", nbytes)
        if length != nbytes:
            yield f"{where}: length {length} disagrees with the {nbytes} bytes its shape needs"
            return
        if offset + length > file_size:
            yield (
                f"{where}: the file holds {file_size} bytes, fewer than offset {offset} + length {length} "
                f"(missing or truncated data)"
            )

    def data_file(self, location: str) -> tuple[str | None, int]:
        """(problem or None, size) of an external data file, resolved inside the model's directory."""
        if location in self._files:
            return self._files[location]
        real = os.path.realpath(os.path.join(self.base_dir, location))
        result: tuple[str | None, int]
        try:
            inside = os.path.commonpath([real, self.base_real]) == self.base_real
        except ValueError:
            inside = False
        if not inside:
            result = (f"resolves outside the model's directory (to {real}; refused: path traversal)", 0)
        else:
            try:
                info = os.stat(real)
            except FileNotFoundError:
                result = ("the data file does not exist", 0)
            except OSError as exc:
                result = (f"the data file cannot be read ({exc.strerror})", 0)
            else:
                if stat.S_ISREG(info.st_mode):
                    result = (None, info.st_size)
                else:
                    result = ("the data file is not a regular file", 0)
        self._files[location] = result
        return result


#: Domains whose operator schemas the onnx package knows.
_ONNX_SCHEMA_DOMAINS = (STANDARD, "ai.onnx.ml", "ai.onnx.preview.training")

#: Bit widths whose raw_data length must match the shape exactly (6-bit packing is onnx_ir's business).
_EXACT_BITS = (1, 2, 4, 8, 16, 32, 64)


def onnx_schema(op_type: str, domain: str, opset: int):
    """The onnx OpSchema of an op at ``opset``, or None when onnx has none."""
    try:
        return onnx.defs.get_schema(op_type, max(int(opset), 1), domain)
    except Exception:  # SchemaError: unknown op, or no version at this opset
        return None


def node_label(node: onnx.NodeProto, index: int, prefix: str = "") -> str:
    """How findings name a node: its name, or ``#index`` when it has none (``outer/inner`` in subgraphs)."""
    return prefix + (node.name or f"#{index}")


def op_label(node: onnx.NodeProto) -> str:
    """``op_type``, with the domain for non-standard ops (``qonnx.custom_op.general:Quant``)."""
    domain = canonical_domain(node.domain)
    return node.op_type if domain == STANDARD else f"{node.domain}:{node.op_type}"


def subgraph_free_names(node: onnx.NodeProto) -> set[str]:
    """Names a node's subgraphs read from enclosing scopes (implicit inputs of the node)."""
    free: set[str] = set()
    for attr in node.attribute:
        graphs = [attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs)
        for graph in graphs:
            defined = {i.name for i in graph.input} | {t.name for t in graph.initializer}
            defined |= {o for n in graph.node for o in n.output}
            for inner in graph.node:
                free.update(name for name in inner.input if name and name not in defined)
                free.update(subgraph_free_names(inner) - defined)
            free.update(o.name for o in graph.output if o.name not in defined)
    return free


# -- dependency order of a graph's nodes ----------------------------------------------------


def topological_indices(graph: onnx.GraphProto, producers: dict[str, int] | None = None) -> list[int]:
    """Node indices of ``graph`` in dependency order; nodes on or behind a cycle are left out.

    Of the nodes ready at the start, the first in file order goes first; after that, the
    node made ready last (a stack). ``producers``: as for ``find_cycle``.
    """
    return _kahn(graph, producers)[0]


def find_cycle(graph: onnx.GraphProto, producers: dict[str, int] | None = None) -> list[int]:
    """Node indices of one cycle of ``graph`` (in dependency order), or [] when it has none.

    A node depends on the producers of its inputs and of the outer values its subgraphs read;
    ``producers`` maps a value name to the index of the node that produces it (default: the
    first node that outputs the name).
    """
    order, pending, deps = _kahn(graph, producers)
    if len(order) == len(deps):
        return []
    # Walk back along unresolved dependencies from a stuck node until a node repeats.
    current = next(i for i, count in enumerate(pending) if count > 0)
    seen: dict[int, int] = {}
    walk: list[int] = []
    while current not in seen:
        seen[current] = len(walk)
        walk.append(current)
        current = next(i for i in deps[current] if pending[i] > 0)
    cycle = walk[seen[current]:]
    cycle.reverse()  # producer before consumer
    return cycle


def _kahn(graph: onnx.GraphProto, producers: dict[str, int] | None) -> tuple[list[int], list[int], list[set[int]]]:
    """Kahn's algorithm over the nodes of ``graph``, linear in nodes + edges.

    Returns the order reached, each node's count of dependencies left unresolved
    (non-zero exactly for the nodes on or behind a cycle) and each node's dependencies.
    """
    if producers is None:
        producers = {}
        for i, node in enumerate(graph.node):
            for out in node.output:
                if out:
                    producers.setdefault(out, i)
    deps: list[set[int]] = []
    for node in graph.node:
        names = set(node.input)
        if any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in node.attribute):
            names |= subgraph_free_names(node)
        deps.append({producers[n] for n in names if n in producers})
    pending = [len(d) for d in deps]
    users: list[list[int]] = [[] for _ in deps]
    for j, d in enumerate(deps):
        for i in d:
            users[i].append(j)
    ready = [i for i in reversed(range(len(deps))) if pending[i] == 0]
    order: list[int] = []
    while ready:
        i = ready.pop()
        order.append(i)
        for j in users[i]:
            pending[j] -= 1
            if pending[j] == 0:
                ready.append(j)
    return order, pending, deps


# -- helpers ----------------------------------------------------------------------------------


def _utf8(attr: onnx.AttributeProto) -> bool:
    try:
        for text in [attr.s] if attr.type == onnx.AttributeProto.STRING else list(attr.strings):
            text.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _data_type(value: int) -> ir.DataType | None:
    try:
        return ir.DataType(int(value))
    except (ValueError, TypeError):
        return None


def _bitwidth(dtype: ir.DataType) -> int | None:
    try:
        return int(dtype.bitwidth)
    except (TypeError, ValueError, AttributeError):
        return None  # STRING, UNDEFINED


def _span(dims) -> int:
    """Product of the dimensions with zeros counted as one: an empty tensor with absurd
    dimensions is refused too (NumPy cannot even describe it)."""
    return math.prod(max(int(d), 1) for d in dims)


def _size_text(dims, span: int) -> str:
    if any(d == 0 for d in dims if d is not None):
        return f" (empty, but its dimensions span {_bytes_text(span)})"
    return f" of {_bytes_text(span)}"


def _dims_text(dims) -> str:
    return "(" + ", ".join(str(d) for d in dims) + ")"


def _bytes_text(n: int) -> str:
    for unit, size in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.1f} {unit} ({n} bytes)"
    return f"{n} bytes"



