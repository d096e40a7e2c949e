"""Shape inference: element types and shapes of every value, one node at a time.

The ``infer-shapes`` pass (passes/infer_shapes.py) is a thin wrapper of
:func:`infer_shapes`; the executor uses it too (memory estimates), so it lives
below both.

The whole model is never serialised (so models above protobuf's 2 GiB limit work):
nodes are visited in topological order and each one is inferred on its own.

* Standard ONNX ops: ``onnx.shape_inference.infer_node_outputs`` with the node's
  schema at the model's opset, given the input types and, for constant inputs of
  at most ``MAX_CONSTANT_ELEMENTS`` elements, their values (so Reshape shapes,
  Slice starts, Resize sizes... resolve). Large constants are never read.
* Shape computations are propagated: ``Shape``/``Size`` of a statically known
  shape is a constant, and a standard node whose inputs are all small known
  constants (and whose inferred output is small) is run with the executor's
  kernel, so ``Shape -> Gather -> Unsqueeze -> Concat -> Reshape`` chains give
  static shapes. With symbolic dimensions, ``Shape`` gives a partly known value
  (e.g. ``[N, 1, 28, 28]``) that is carried through Gather, Unsqueeze, Squeeze,
  Concat, Slice, Cast and Identity; a Reshape to such a target resolves ``0`` and
  ``-1`` where the symbols cancel (``[N, -1]`` of ``(N, 1, 28, 28)`` is ``(N, 784)``).
  These values are only used for inference; the graph is unchanged.
* QONNX custom ops (``qonnx.custom_op.general`` / ``channels_last``): the op
  registry's ``infer_types``.
* ``Constant`` nodes: type and shape come from the attribute (no serialisation).
* Subgraphs (If/Loop/Scan bodies) are inferred first, then their node.

Computation is trusted over annotation. Exporters leave ``value_info`` with
symbolic dimensions (``unk__12``, ``BipolarQuant63_dim_1``, ``N``) that stay after
the graph input has become static; such stale annotations must not survive, or
every later consumer (cost, prepare, streamline, hls4ml) sees unknown shapes. So
each node output is computed from its (already inferred) inputs and merged with
what the model declares as follows:

* a computed size wins over a declared symbolic dimension, and a computed symbolic
  dimension (one that comes from a graph input, such as its batch ``N``) wins over
  whatever was declared: a static graph input makes every downstream shape static,
  a truly dynamic one stays symbolic all the way;
* where the computation leaves a dimension unknown, the declared one is kept;
* when a computed type, rank or size contradicts a declared one, the computed one
  wins and a :class:`ShapeConflictWarning` names node and value (with
  ``strict=True`` this is a BadInputError instead).

Graph inputs and initializers are the ground truth and are never changed.

Values whose type or shape stays unknown are left alone; :func:`unknown_shapes`
lists them, and after a run the pass's ``failures`` attribute holds one line per
node whose inference failed or that has no known inference (unknown op).
``modified`` is True only if some value's type or shape actually changed.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Iterable

import numpy as np
import onnx
import onnx.defs
import onnx.numpy_helper
import onnx.shape_inference

from qonnx_tools import ops as qonnx_ops
from qonnx_tools._ir import ir, subgraphs
from qonnx_tools.domains import CHANNELS_LAST, ONNX_DOMAINS, QONNX, STANDARD, canonical_domain
from qonnx_tools.errors import BadInputError, QonnxToolsError, UnsupportedOpError, first_line
from qonnx_tools.executor.attributes import decode_attributes
from qonnx_tools.executor.registry import NodeContext
from qonnx_tools.graph_order import topological_order
from qonnx_tools.ops.base import TensorInfo


#: Constants with at most this many elements are read and given to inference as data.
MAX_CONSTANT_ELEMENTS = 1024


#: Nodes never evaluated for constant propagation (not deterministic).
_NONDETERMINISTIC = frozenset(
    {"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial", "Bernoulli"}
)


class ShapeConflictWarning(UserWarning):
    """A computed type or shape contradicts the declared one (the computed one is used)."""


def infer_shapes(model: ir.Model, *, strict: bool = False) -> tuple[bool, list[str]]:
    """Infer every value's type and shape in place (see the module docstring).

    Returns (whether any value's type or shape changed, one line per node whose inference
    failed or that has no known inference). ``strict``: raise BadInputError /
    UnsupportedOpError instead of leaving values unknown or keeping a conflict quiet.
    """
    run = _ShapeRun(model, strict)
    run.graph(model.graph)
    return run.changed > 0, run.failures


def unknown_shapes(model: ir.Model, *, anonymous_dims: bool = False) -> list[str]:
    """Names of values (graph inputs, initializers, node outputs, subgraphs included)
    whose element type or shape is unknown.

    With ``anonymous_dims`` also values whose shape has an unnamed unknown dimension
    (named symbolic dimensions such as a batch ``N`` are fine). Graph values are listed
    once, in graph order; a subgraph value is prefixed with its node's name.
    """
    found: list[str] = []
    _collect_unknown(model.graph, "", anonymous_dims, found, set())
    return found


def _collect_unknown(graph: ir.Graph, prefix: str, anonymous_dims: bool, found: list[str], seen: set[int]) -> None:
    def check(value: ir.Value | None) -> None:
        if value is None or id(value) in seen:
            return
        seen.add(id(value))
        if value.type is None or value.shape is None:
            found.append(prefix + (value.name or "<unnamed>"))
        elif anonymous_dims and any(isinstance(d, ir.SymbolicDim) and d.value is None for d in value.shape):
            found.append(prefix + (value.name or "<unnamed>"))

    for value in graph.inputs:
        check(value)
    for value in graph.initializers.values():
        check(value)
    for node in graph:
        for value in node.outputs:
            check(value)
        for sub in subgraphs(node):
            _collect_unknown(sub, f"{prefix}{node.name or node.op_type}/", anonymous_dims, found, seen)


# -- the run -------------------------------------------------------------------


class _ShapeRun:
    """State of one pass run over one model (and its subgraphs)."""

    def __init__(self, model: ir.Model, strict: bool) -> None:
        self.model = model
        self.strict = strict
        self.opsets = {canonical_domain(d): int(v) for d, v in model.opset_imports.items()}
        self.opset_protos = [onnx.helper.make_opsetid(d, v) for d, v in self.opsets.items()]
        self.ir_version = int(model.ir_version or onnx.IR_VERSION)
        self.known: dict[int, np.ndarray] = {}  # id(value) -> small known value (propagated)
        # id(value) -> (dims, is_scalar): a 1-D (or scalar) shape value with symbolic entries
        # (a str names a symbolic dimension, None is unknown), e.g. Shape of (N, 1, 28, 28)
        self.partial: dict[int, tuple[tuple[int | str | None, ...], bool]] = {}
        self.keep: list[ir.Value] = []  # keeps ids in ``known`` alive and unique
        self.changed = 0
        self.failures: list[str] = []
        self._schemas: dict[tuple[str, str, int], Any] = {}

    # -- graphs ----------------------------------------------------------------
    def graph(self, graph: ir.Graph) -> None:
        for value in graph.initializers.values():
            tensor = value.const_value
            if tensor is not None:
                self.merge(None, value, ir.TensorType(tensor.dtype), ir.Shape(list(tensor.shape)))
        for node in topological_order(graph):
            for sub in subgraphs(node):
                self.graph(sub)
            try:
                self.node(node)
            except QonnxToolsError as exc:  # bad attributes of a QONNX op, strict-mode conflicts
                if self.strict:
                    raise
                self.failures.append(f"node {node.name!r} ({_op_name(node)}): {first_line(exc)}")
            except Exception as exc:  # onnx InferenceError, errors of an op's infer_types...
                self.fail(node, f"{type(exc).__name__}: {first_line(exc)}", BadInputError, exc)

    def fail(
        self, node: ir.Node, reason: str, error: type[QonnxToolsError], exc: BaseException | None = None
    ) -> None:
        text = f"node {node.name!r} ({_op_name(node)}): {reason}"
        if self.strict:
            raise error(f"infer-shapes: {text}") from exc
        self.failures.append(text)

    # -- one node --------------------------------------------------------------
    def node(self, node: ir.Node) -> None:
        domain = canonical_domain(node.domain)
        if domain == STANDARD and node.op_type == "Constant" and self.constant_node(node):
            return
        if domain in (QONNX, CHANNELS_LAST):
            op = qonnx_ops.get_op(domain, node.op_type, self.opsets.get(domain) or None)
            if op is not None:
                self.qonnx_node(node, op, domain)
                return
        if domain in ONNX_DOMAINS:
            schema = self.schema(node.op_type, domain)
            if schema is not None:
                self.standard_node(node, schema, domain)
                return
        self.fail(node, f"no shape inference for {domain or 'ai.onnx'}:{node.op_type}", UnsupportedOpError)

    def schema(self, op_type: str, domain: str):
        version = self.opsets.get(domain)
        if version is None:
            return None
        key = (domain, op_type, version)
        if key not in self._schemas:
            try:
                self._schemas[key] = onnx.defs.get_schema(op_type, version, domain)
            except onnx.defs.SchemaError:
                self._schemas[key] = None
        return self._schemas[key]

    def standard_node(self, node: ir.Node, schema, domain: str) -> None:
        proto = ir.serde.serialize_node(node)
        input_types: dict[str, onnx.TypeProto] = {}
        input_data: dict[str, onnx.TensorProto] = {}
        del proto.input[:]
        for i, value in enumerate(node.inputs):
            if value is None:
                proto.input.append("")
                continue
            name = value.name or f"__input{i}"
            proto.input.append(name)
            input_types[name] = _type_proto(value)
            data = self.small_value(value)
            if data is not None:
                input_data[name] = onnx.numpy_helper.from_array(data, name)
        del proto.output[:]
        out_names = []
        for i, value in enumerate(node.outputs):
            out_names.append(value.name or f"__output{i}")
            proto.output.append(out_names[-1])
        for outer in _outer_scope_values(node):  # values subgraphs read from enclosing graphs
            if outer.name and outer.name not in input_types:
                input_types[outer.name] = _type_proto(outer)
        inferred = onnx.shape_inference.infer_node_outputs(
            schema, proto, input_types, input_data, opset_imports=self.opset_protos, ir_version=self.ir_version
        )
        for name, value in zip(out_names, node.outputs):
            type_proto = inferred.get(name)
            if type_proto is None:
                continue
            self.merge(node, value, *_from_type_proto(type_proto))
        self.propagate(node, domain)
        if domain == STANDARD and node.op_type == "Reshape" and len(node.inputs) >= 2 and node.outputs:
            self.reshape_from_partial(node)

    def qonnx_node(self, node: ir.Node, op, domain: str) -> None:
        where = f"node {node.name!r} ({node.op_type})"
        attrs = op.resolve_attributes(decode_attributes(node), where)
        ctx = NodeContext(
            name=node.name or "",
            op_type=node.op_type,
            domain=domain,
            opset=self.opsets.get(domain, 0),
            attrs=attrs,
            n_outputs=len(node.outputs),
        )
        infos = [self.info(v) for v in node.inputs]
        results = op.infer_types(ctx, infos)
        for value, info in zip(node.outputs, results):
            dtype = ir.TensorType(info.dtype) if info.dtype is not None else None
            self.merge(node, value, dtype, info.shape)

    def constant_node(self, node: ir.Node) -> bool:
        """Constant: type and shape from the attribute; False to fall back to ONNX inference."""
        if len(node.outputs) != 1 or len(node.attributes) != 1:
            return False
        key, attr = next(iter(node.attributes.items()))
        value = attr.value
        if key == "value" and isinstance(value, ir.TensorProtocol):
            self.merge(node, node.outputs[0], ir.TensorType(value.dtype), ir.Shape(list(value.shape)))
        elif key in ("value_float", "value_int", "value_string"):
            dtype = {"value_float": ir.DataType.FLOAT, "value_int": ir.DataType.INT64}.get(key, ir.DataType.STRING)
            self.merge(node, node.outputs[0], ir.TensorType(dtype), ir.Shape([]))
        elif key in ("value_floats", "value_ints", "value_strings"):
            dtype = {"value_floats": ir.DataType.FLOAT, "value_ints": ir.DataType.INT64}.get(key, ir.DataType.STRING)
            self.merge(node, node.outputs[0], ir.TensorType(dtype), ir.Shape([len(value)]))
        else:
            return False
        return True

    # -- constants -------------------------------------------------------------
    def small_value(self, value: ir.Value) -> np.ndarray | None:
        """The value's array when it is known and has at most MAX_CONSTANT_ELEMENTS elements."""
        known = self.known.get(id(value))
        if known is not None:
            return known
        tensor = value.const_value
        if tensor is None:
            producer = value.producer()
            if producer is None or producer.op_type != "Constant" or canonical_domain(producer.domain) != STANDARD:
                return None
            tensor = _constant_attribute(producer)
            if tensor is None:
                return None
        if isinstance(tensor, np.ndarray):
            array = tensor
        else:
            if _elements(tensor.shape) > MAX_CONSTANT_ELEMENTS:
                return None
            try:
                array = np.asarray(tensor.numpy())
            except Exception:  # e.g. missing external data
                return None
        if array.size > MAX_CONSTANT_ELEMENTS or array.dtype == object:
            return None
        self.remember(value, array)
        return array

    def remember(self, value: ir.Value, array: np.ndarray) -> None:
        self.known[id(value)] = array
        self.keep.append(value)

    def info(self, value: ir.Value | None) -> TensorInfo:
        if value is None:
            return TensorInfo()
        dtype = value.type.dtype if isinstance(value.type, ir.TensorType) else None
        return TensorInfo(dtype=dtype, shape=value.shape, value=self.small_value(value))

    def propagate(self, node: ir.Node, domain: str) -> None:
        """Remember small outputs computable now: Shape/Size of static shapes, tiny kernels."""
        if domain != STANDARD or not node.outputs:
            return
        op = node.op_type
        if op in ("Shape", "Size"):
            source = node.inputs[0] if node.inputs else None
            shape = source.shape if source is not None else None
            if shape is None:
                return
            dims = list(shape)
            if op == "Shape":
                rank = len(dims)
                start = _clamp_axis(_int_attr(node, "start", 0), rank)
                end = _clamp_axis(_int_attr(node, "end", rank), rank)
                dims = dims[start:end]
            if not all(isinstance(d, int) for d in dims):
                if op == "Shape":
                    self.partial[id(node.outputs[0])] = (tuple(_partial_dim(d) for d in dims), False)
                    self.keep.append(node.outputs[0])
                return
            result = np.array(dims, dtype=np.int64) if op == "Shape" else np.array(math.prod(dims), dtype=np.int64)
            self.remember(node.outputs[0], result)
            return
        if op in _NONDETERMINISTIC or not node.inputs or any(subgraphs(node)):
            return
        if op in _PARTIAL_OPS and self.propagate_partial(node):
            return
        arrays = []
        for value in node.inputs:
            if value is None:
                arrays.append(None)
                continue
            array = self.small_value(value)
            if array is None:
                return
            arrays.append(array)
        for value in node.outputs:  # run only when every output is known to be small
            if value.shape is None or not all(isinstance(d, int) for d in value.shape):
                return
            if _elements(value.shape) > MAX_CONSTANT_ELEMENTS or not isinstance(value.type, ir.TensorType):
                return
        from qonnx_tools.executor import kernels as _kernels  # noqa: F401  (registers the kernels)
        from qonnx_tools.executor.registry import lookup

        kernel = lookup(op, self.opsets.get(STANDARD, 1))
        if kernel is None:
            return
        ctx = NodeContext(
            name=node.name or "",
            op_type=op,
            domain=STANDARD,
            opset=self.opsets.get(STANDARD, 1),
            attrs=decode_attributes(node),
            n_outputs=len(node.outputs),
        )
        try:
            with np.errstate(all="ignore"):
                results = kernel(ctx, *arrays)
        except Exception:
            return  # only an optimisation: the shapes are already inferred
        if isinstance(results, np.ndarray) or np.isscalar(results):
            results = [results]
        for value, result in zip(node.outputs, results):
            array = np.asarray(result)
            want = value.type.dtype.numpy()
            if tuple(array.shape) != tuple(value.shape):
                return
            if array.dtype != want:
                array = array.astype(want)
            self.remember(value, array)

    # -- shape values with symbolic entries -------------------------------------
    def partial_of(self, value: ir.Value | None) -> tuple[tuple[int | str | None, ...], bool] | None:
        """A scalar / 1-D integer value as (entries, is_scalar), when known at least partly."""
        if value is None:
            return None
        found = self.partial.get(id(value))
        if found is not None:
            return found
        array = self.small_value(value)
        if array is None or array.dtype.kind not in "iu" or array.ndim > 1:
            return None
        return tuple(int(v) for v in array.reshape(-1)), array.ndim == 0

    def propagate_partial(self, node: ir.Node) -> bool:
        """Carry symbolic shape entries through Gather/Unsqueeze/Squeeze/Concat/Slice/Cast/Identity.

        Returns True when the output was recorded as a partial value; fully known
        results are left to the kernel path.
        """
        op = node.op_type
        inputs = list(node.inputs)
        if not inputs or inputs[0] is None or id(inputs[0]) not in self.partial and op != "Concat":
            return False
        result: tuple[tuple[int | str | None, ...], bool] | None = None
        if op in ("Identity", "Cast"):
            if op == "Cast" and _int_attr(node, "to", 0) not in (ir.DataType.INT64.value, ir.DataType.INT32.value):
                return False
            result = self.partial[id(inputs[0])]
        elif op == "Gather":
            entries, scalar = self.partial[id(inputs[0])]
            indices = self.small_value(inputs[1]) if len(inputs) > 1 and inputs[1] is not None else None
            if scalar or indices is None or _int_attr(node, "axis", 0) not in (0, -1) or indices.ndim > 1:
                return False
            try:
                picked = tuple(entries[int(i)] for i in indices.reshape(-1))
            except IndexError:
                return False
            result = (picked, indices.ndim == 0)
        elif op == "Unsqueeze":
            entries, scalar = self.partial[id(inputs[0])]
            result = (entries, False) if scalar else None
        elif op == "Squeeze":
            entries, scalar = self.partial[id(inputs[0])]
            result = (entries, True) if not scalar and len(entries) == 1 else None
        elif op == "Concat":
            parts = [self.partial_of(v) for v in inputs]
            if not any(v is not None and id(v) in self.partial for v in inputs) or any(
                p is None or p[1] for p in parts
            ):
                return False
            result = (tuple(e for p in parts for e in p[0]), False)
        elif op == "Slice":
            entries, scalar = self.partial[id(inputs[0])]
            result = self.slice_partial(node, entries) if not scalar else None
        if result is None:
            return False
        self.partial[id(node.outputs[0])] = result
        self.keep.append(node.outputs[0])
        return True

    def slice_partial(self, node: ir.Node, entries: tuple) -> tuple[tuple, bool] | None:
        if self.opsets.get(STANDARD, 1) < 10:
            starts, ends = _ints_attr(node, "starts"), _ints_attr(node, "ends")
            axes, steps = _ints_attr(node, "axes"), None
        else:
            params = [self.small_value(v) if v is not None else None for v in list(node.inputs)[1:5]]
            params += [None] * (4 - len(params))
            if params[0] is None or params[1] is None:
                return None
            starts, ends = params[0].tolist(), params[1].tolist()
            axes = params[2].tolist() if params[2] is not None else None
            steps = params[3].tolist() if params[3] is not None else None
        if starts is None or ends is None or len(starts) != 1 or (axes is not None and list(axes) not in ([0], [-1])):
            return None
        step = int(steps[0]) if steps else 1
        if step == 0:
            return None
        return tuple(entries[slice(int(starts[0]), int(ends[0]), step)]), False

    def reshape_from_partial(self, node: ir.Node) -> None:
        """Reshape whose target is only partly known (e.g. [N, -1]): resolve what the symbols allow."""
        target = self.partial.get(id(node.inputs[1]))
        out = node.outputs[0]
        if target is None or target[1]:
            return
        data = node.inputs[0]
        in_dims = [_partial_dim(d) for d in data.shape] if data is not None and data.shape is not None else None
        allow_zero = _int_attr(node, "allowzero", 0)
        dims: list[int | str | None] = []
        for i, entry in enumerate(target[0]):
            if entry == 0 and not allow_zero:
                entry = in_dims[i] if in_dims is not None and i < len(in_dims) else None
            dims.append(entry)
        if dims.count(-1) == 1:
            dims[dims.index(-1)] = _divide(in_dims, [d for d in dims if d != -1])
        elif -1 in dims:
            return
        shape = ir.Shape([ir.SymbolicDim(d) if not isinstance(d, int) else d for d in dims])
        self.merge(node, out, None, shape)

    # -- merging ---------------------------------------------------------------
    def merge(self, node: ir.Node | None, value: ir.Value, type_: ir.TypeProtocol | None, shape: ir.Shape | None) -> None:
        """Merge a computed type and shape into ``value`` (computation wins, see the module docstring)."""
        where = f"node {node.name!r} ({_op_name(node)})" if node is not None else "initializer"
        if type_ is not None and value.type != type_:
            if value.type is not None:
                self.conflict(f"{where}: output {value.name!r} is declared {value.type} but computed {type_}")
            value.type = type_
            self.changed += 1
        if shape is None:
            return
        if value.shape is None:
            value.shape = ir.Shape(list(shape))
            self.changed += 1
            return
        old = list(value.shape)
        new = list(shape)
        if len(old) != len(new):
            self.conflict(f"{where}: output {value.name!r} is declared with shape {value.shape} but computed {shape}")
            value.shape = ir.Shape(new)
            self.changed += 1
            return
        merged = []
        conflicting = False
        for declared, inferred in zip(old, new):
            if isinstance(inferred, int):
                conflicting |= isinstance(declared, int) and declared != inferred
                merged.append(inferred)
            elif inferred.value is not None:  # a symbol carried from a graph input
                merged.append(inferred)
            else:  # the computation does not know this dimension: keep the declaration
                merged.append(declared)
        if conflicting:
            self.conflict(f"{where}: output {value.name!r} is declared with shape {value.shape} but computed {shape}")
        if _shape_key(merged) != _shape_key(old):
            value.shape = ir.Shape(merged)
            self.changed += 1

    def conflict(self, text: str) -> None:
        if self.strict:
            raise BadInputError(f"infer-shapes: {text}")
        warnings.warn(f"infer-shapes: {text}; using the computed one", ShapeConflictWarning, stacklevel=4)


# -- helpers -------------------------------------------------------------------


def _outer_scope_values(node: ir.Node) -> list[ir.Value]:
    """Values used inside ``node``'s subgraphs (recursively) but defined outside them."""
    subs = list(subgraphs(node))
    if not subs:
        return []
    defined: set[int] = set()
    used: list[ir.Value] = []

    def walk(graph: ir.Graph) -> None:
        defined.update(id(v) for v in graph.inputs)
        defined.update(id(v) for v in graph.initializers.values())
        for inner in graph:
            defined.update(id(v) for v in inner.outputs)
        for inner in graph:
            used.extend(v for v in inner.inputs if v is not None)
            for sub in subgraphs(inner):
                walk(sub)

    for sub in subs:
        walk(sub)
    out, seen = [], set()
    for value in used:
        if id(value) not in defined and id(value) not in seen:
            seen.add(id(value))
            out.append(value)
    return out


def _type_proto(value: ir.Value) -> onnx.TypeProto:
    """The value's type and shape as a TypeProto (empty when the type is unknown)."""
    type_ = value.type
    shape = value.shape
    if type_ is None and value.const_value is not None:
        type_ = ir.TensorType(value.const_value.dtype)
        shape = shape if shape is not None else ir.Shape(list(value.const_value.shape))
    if type_ is None:
        return onnx.TypeProto()
    proto = ir.serde.serialize_type(type_)
    if shape is not None:
        ir.serde.serialize_shape_into(proto, shape)
    return proto


def _from_type_proto(proto: onnx.TypeProto) -> tuple[ir.TypeProtocol | None, ir.Shape | None]:
    if not proto.WhichOneof("value"):
        return None, None
    if proto.HasField("tensor_type") and proto.tensor_type.elem_type == 0:
        type_ = None
    else:
        type_ = ir.serde.deserialize_type_proto_for_type(proto)
    shape = ir.serde.deserialize_type_proto_for_shape(proto)
    return type_, shape


def _constant_attribute(node: ir.Node):
    """The tensor (or small array) a Constant node holds, without materialising large ones."""
    for key, attr in node.attributes.items():
        if attr.is_ref():
            return None
        if key == "value" and isinstance(attr.value, ir.TensorProtocol):
            return attr.value
        if key == "value_float":
            return np.array(attr.value, dtype=np.float32)
        if key == "value_floats":
            return np.array(list(attr.value), dtype=np.float32)
        if key == "value_int":
            return np.array(attr.value, dtype=np.int64)
        if key == "value_ints":
            return np.array(list(attr.value), dtype=np.int64)
    return None


#: Ops through which symbolic shape entries are carried (see ``propagate_partial``).
_PARTIAL_OPS = frozenset({"Identity", "Cast", "Gather", "Unsqueeze", "Squeeze", "Concat", "Slice"})


def _partial_dim(dim: Any) -> int | str | None:
    return dim if isinstance(dim, int) else dim.value


def _divide(numerator: list | None, denominator: list) -> int | str | None:
    """prod(numerator) / prod(denominator) when the symbols cancel and the integers divide."""
    if numerator is None or any(d is None for d in numerator) or any(d is None for d in denominator):
        return None
    top = [d for d in numerator if isinstance(d, str)]
    for name in (d for d in denominator if isinstance(d, str)):
        if name not in top:
            return None
        top.remove(name)
    num = math.prod(d for d in numerator if isinstance(d, int))
    den = math.prod(d for d in denominator if isinstance(d, int))
    if den == 0 or num % den:
        return None
    if not top:
        return num // den
    return top[0] if len(top) == 1 and num == den else None


def _ints_attr(node: ir.Node, key: str) -> list[int] | None:
    attr = node.attributes.get(key)
    return [int(v) for v in attr.value] if attr is not None and not attr.is_ref() else None


def _elements(shape: Iterable[Any]) -> int:
    total = 1
    for d in shape:
        if not isinstance(d, int):
            return MAX_CONSTANT_ELEMENTS + 1
        total *= d
    return total


def _shape_key(dims: Iterable[Any]) -> tuple:
    return tuple(d if isinstance(d, int) else ("?", d.value) for d in dims)


def _int_attr(node: ir.Node, key: str, default: int) -> int:
    attr = node.attributes.get(key)
    return int(attr.value) if attr is not None and not attr.is_ref() else default


def _clamp_axis(axis: int, rank: int) -> int:
    if axis < 0:
        axis += rank
    return min(max(axis, 0), rank)


def _op_name(node: ir.Node | None) -> str:
    if node is None:
        return ""
    domain = canonical_domain(node.domain)
    return f"{domain}:{node.op_type}" if domain else node.op_type


