"""Whole-graph NumPy executor: the definition of qonnx_tools' numerics.

An ``Executor`` prepares a model once (topological order, one kernel and one set of
decoded attributes per node, constant arrays, last-use counts) and can then be
run many times. Intermediate arrays are freed right after their last consumer.

Memory: before running, ``run`` estimates the peak size of the intermediate tensors
(shapes the model declares or shape inference finds, symbolic dimensions bound from
the given inputs, times element sizes, following the free-after-last-use plan) and
refuses with BadInputError when it exceeds ``max_memory_bytes`` (default: the memory
available now, from /proc/meminfo's MemAvailable, the cgroup limit, or sysconf),
rather than being killed by the OS half-way. While running, the live bytes are
tracked and the run stops the same way if they pass the limit (tensors of unknown shape).
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from qonnx_tools import ops as qonnx_ops
from qonnx_tools._ir import ir, subgraphs
from qonnx_tools.domains import STANDARD, canonical_domain
from qonnx_tools.errors import BadInputError, ExecutionError, InputMismatchError, QonnxToolsError, UnsupportedOpError
from qonnx_tools.executor import registry
from qonnx_tools.executor.attributes import decode_attributes
from qonnx_tools.graph_order import topological_order

# Importing the kernel package registers every standard kernel.
from qonnx_tools.executor import kernels as _kernels  # noqa: F401


@dataclass
class _Step:
    """One prepared node: its kernel, context, input/output names and what to free after it."""

    node: ir.Node
    kernel: Any
    ctx: registry.NodeContext
    inputs: tuple[str | None, ...]
    outputs: tuple[str, ...]
    free_after: tuple[str, ...] = ()


def _opset_of(model: ir.Model, domain: str) -> int:
    opsets = {canonical_domain(d): v for d, v in model.opset_imports.items()}
    return int(opsets.get(domain, 0) or 0)


def resolve_kernel(node: ir.Node, model: ir.Model) -> tuple[Any, dict[str, Any], int]:
    """(kernel, resolved attributes, opset) for a node; UnsupportedOpError when none exists."""
    domain = canonical_domain(node.domain)
    opset = _opset_of(model, domain)
    attrs = decode_attributes(node)
    where = f"node {node.name!r} ({node.op_type})"
    if domain == STANDARD:
        kernel = registry.lookup(node.op_type, opset or 1)
        if kernel is None:
            raise UnsupportedOpError(f"{where}: no kernel for ai.onnx {node.op_type} at opset {opset}")
        return kernel, attrs, opset
    op = qonnx_ops.get_op(domain, node.op_type, opset or None)
    if op is None:
        kernel = registry.lookup(node.op_type, opset or 1, domain=domain)
        if kernel is None:
            raise UnsupportedOpError(f"{where}: unknown op {domain}:{node.op_type}")
        return kernel, attrs, opset
    op.check_inputs(len(node.inputs), where)
    return op.execute, op.resolve_attributes(attrs, where), opset


def bind_kernel(node: ir.Node, model: ir.Model) -> tuple[Any, registry.NodeContext]:
    """(kernel, NodeContext) ready to call as ``kernel(ctx, *arrays)``; UnsupportedOpError when none exists."""
    kernel, attrs, opset = resolve_kernel(node, model)
    ctx = registry.NodeContext(
        name=node.name or "",
        op_type=node.op_type,
        domain=canonical_domain(node.domain),
        opset=opset,
        attrs=attrs,
        n_outputs=len(node.outputs),
    )
    return kernel, ctx


class Executor:
    """Runs one model many times with NumPy kernels; build once, call ``run`` per input batch."""

    def __init__(self, model: ir.Model, *, max_memory_bytes: int | None = None) -> None:
        """``max_memory_bytes``: refuse runs whose intermediate tensors would need more
        (None: the memory available when ``run`` is called; see ``available_memory_bytes``)."""
        self.model = model
        self.max_memory_bytes = max_memory_bytes
        self._size_cache: dict[tuple, dict[str, int]] = {}
        graph = model.graph
        self._constants: dict[str, np.ndarray] = {
            name: np.asarray(value.const_value.numpy())
            for name, value in graph.initializers.items()
            if value.const_value is not None
        }
        self._graph_inputs = [v for v in graph.inputs]
        self._output_names = [v.name for v in graph.outputs]
        self._steps = [self._prepare(node, model) for node in topological_order(graph)]
        self._plan_frees()

    # -- preparation ---------------------------------------------------------
    def _prepare(self, node: ir.Node, model: ir.Model) -> _Step:
        kernel, ctx = bind_kernel(node, model)
        inputs = tuple(v.name if v is not None and v.name else None for v in node.inputs)
        outputs = tuple(v.name or "" for v in node.outputs)
        return _Step(node, kernel, ctx, inputs, outputs)

    def _plan_frees(self) -> None:
        keep = set(self._output_names) | set(self._constants)
        last_use: dict[str, int] = {}
        for i, step in enumerate(self._steps):
            for name in step.inputs:
                if name is not None:
                    last_use[name] = i
            for name in step.outputs:
                last_use.setdefault(name, i)  # produced but never read: free at once
        frees: dict[int, list[str]] = {}
        for name, i in last_use.items():
            if name not in keep:
                frees.setdefault(i, []).append(name)
        for i, step in enumerate(self._steps):
            step.free_after = tuple(frees.get(i, ()))

    # -- running -------------------------------------------------------------
    @property
    def input_names(self) -> list[str]:
        """Graph inputs the caller must provide (inputs backed by an initializer are optional)."""
        return [v.name for v in self._graph_inputs if v.name not in self._constants]

    @property
    def output_names(self) -> list[str]:
        return list(self._output_names)

    @property
    def tensor_names(self) -> set[str]:
        """Every tensor a run computes or takes: graph inputs and node outputs."""
        return {name for step in self._steps for name in step.outputs if name} | {v.name for v in self._graph_inputs}

    def run(
        self,
        inputs: Mapping[str, Any],
        *,
        keep_intermediates: bool = False,
        substitute: Mapping[str, np.ndarray] | None = None,
        hooks: Mapping[str, Callable[[np.ndarray], Any]] | None = None,
    ) -> dict[str, np.ndarray]:
        """Outputs by name (all intermediate tensors too when ``keep_intermediates``).

        ``substitute`` (intermediate tensor name -> array): consumers of that tensor read
        the given array instead of the computed one, which is still what ``run``
        returns under that name. Running every layer on a reference's own layer inputs
        this way checks each layer in isolation (see ``streamline.layerwise``).

        ``hooks`` (tensor name -> callable): each is called with its tensor (a graph input or a
        node output) as soon as it exists, so an observer (``quantize.observe``) sees chosen
        tensors without keeping every intermediate alive.
        """
        env: dict[str, np.ndarray] = dict(self._constants)
        checked = self._check_inputs(inputs)
        env.update(checked)
        forced = self._check_substitutes(substitute or {})
        hooks = self._check_hooks(hooks or {})
        for name, hook in hooks.items():
            if name in env:
                hook(env[name])
        limit, source = self._memory_limit()
        if limit is not None:
            self._refuse_if_too_large(checked, limit, source, keep_intermediates)
        held: dict[str, int] = {}  # bytes of the intermediate tensors alive now
        live = 0
        for step in self._steps:
            args = [_read(env, forced, name) for name in step.inputs]
            results = self._call(step, args)
            for name, value in zip(step.outputs, results):
                if name:
                    env[name] = value
                    live += value.nbytes - held.get(name, 0)
                    held[name] = value.nbytes
                    if name in hooks:
                        hooks[name](value)
            if not keep_intermediates:
                for name in step.free_after:
                    env.pop(name, None)
                    live -= held.pop(name, 0)
            if limit is not None and live > limit:
                raise BadInputError(
                    f"node {step.ctx.name!r} ({step.ctx.op_type}): intermediate tensors hold {_bytes_text(live)}, "
                    f"more than the {_bytes_text(limit)} {source}; stopped before running out of memory"
                )
        if keep_intermediates:
            return {k: v for k, v in env.items() if k not in self._constants or k in self._output_names}
        return {name: env[name] for name in self._output_names}

    def _check_substitutes(self, substitute: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        produced = {name for step in self._steps for name in step.outputs if name}
        unknown = sorted(set(substitute) - produced)
        if unknown:
            raise BadInputError(f"substitute: {unknown[0]!r} is not produced by any node")
        return {name: np.asarray(array) for name, array in substitute.items()}

    def _check_hooks(self, hooks: Mapping[str, Callable[[np.ndarray], Any]]) -> dict[str, Callable]:
        unknown = sorted(set(hooks) - self.tensor_names)
        if unknown:
            raise BadInputError(f"hooks: {unknown[0]!r} is neither a graph input nor produced by any node")
        return dict(hooks)

    # -- memory ----------------------------------------------------------------
    def _memory_limit(self) -> tuple[int | None, str]:
        if self.max_memory_bytes is not None:
            return int(self.max_memory_bytes), "allowed (max_memory_bytes)"
        return available_memory_bytes(), "available"

    def estimate_memory(self, inputs: Mapping[str, np.ndarray], *, keep_intermediates: bool = False) -> tuple[int, int | None]:
        """(peak bytes of the intermediate tensors, index of the step at the peak) for these inputs.

        Shapes are the model's declared ones with symbolic dimensions bound to the
        inputs' sizes; where that leaves a node output unknown, shape inference runs with
        the inputs' concrete shapes (the model is left as it was). Outputs whose shape stays
        unknown count as zero, so the estimate is then a lower bound.
        """
        key = tuple(sorted((name, np.shape(a)) for name, a in inputs.items()))
        sizes = self._size_cache.get(key)
        if sizes is None:
            sizes = self._sizes(inputs)
            self._size_cache = {key: sizes}  # one input signature is remembered
        live = peak = 0
        peak_step = None
        for i, step in enumerate(self._steps):
            live += sum(sizes.get(name, 0) for name in step.outputs if name and name not in inputs)
            if live > peak:
                peak, peak_step = live, i
            if not keep_intermediates:
                live -= sum(sizes.get(name, 0) for name in step.free_after if name not in inputs)
        return peak, peak_step

    def _refuse_if_too_large(self, inputs: Mapping[str, np.ndarray], limit: int, source: str, keep: bool) -> None:
        peak, step_index = self.estimate_memory(inputs, keep_intermediates=keep)
        if peak <= limit:
            return
        shapes = [np.shape(a) for a in inputs.values() if np.ndim(a) > 0]
        batch = f" at batch {shapes[0][0]}" if shapes else ""
        where = ""
        if step_index is not None:
            ctx = self._steps[step_index].ctx
            where = f" (peak while node {ctx.name!r} ({ctx.op_type}) runs)"
        raise BadInputError(
            f"refusing to run: intermediate tensors need an estimated {_bytes_text(peak)}{batch}{where}, "
            f"more than the {_bytes_text(limit)} {source}; use a smaller batch"
        )

    def _sizes(self, inputs: Mapping[str, np.ndarray]) -> dict[str, int]:
        """name -> bytes of every node output whose size is known for these inputs."""
        bound: dict[str, int] = {}
        for value in self._graph_inputs:
            if value.name in inputs and value.shape is not None:
                for dim, size in zip(value.shape, np.shape(inputs[value.name])):
                    if isinstance(dim, ir.SymbolicDim) and dim.value is not None:
                        bound.setdefault(dim.value, int(size))
        outputs = [v for step in self._steps for v in step.node.outputs if v.name]
        sizes = {v.name: n for v in outputs if (n := _value_bytes(v.dtype, v.shape, bound)) is not None}
        if len(sizes) < len(outputs):
            concrete = {name: tuple(np.shape(a)) for name, a in inputs.items()}
            inferred = _infer_without_modifying(self.model, concrete)
            for value in outputs:
                if value.name not in sizes and id(value) in inferred:
                    n = _value_bytes(*inferred[id(value)], bound)
                    if n is not None:
                        sizes[value.name] = n
        return sizes

    def _call(self, step: _Step, args: list[np.ndarray | None]) -> Sequence[np.ndarray]:
        try:
            result = step.kernel(step.ctx, *args)
        except QonnxToolsError:
            raise
        except Exception as exc:  # a kernel bug or an input it cannot handle: name the node
            shapes = ", ".join("None" if a is None else f"{np.shape(a)}:{np.asarray(a).dtype}" for a in args)
            raise ExecutionError(
                f"node {step.ctx.name!r} ({step.ctx.op_type}) failed on inputs [{shapes}]: {type(exc).__name__}: {exc}"
            ) from exc
        if isinstance(result, np.ndarray) or np.isscalar(result):
            result = (result,)
        return [np.asarray(r) for r in result]

    def _check_inputs(self, inputs: Mapping[str, Any]) -> dict[str, np.ndarray]:
        known = {v.name: v for v in self._graph_inputs}
        unknown = sorted(set(inputs) - set(known))
        if unknown:
            raise InputMismatchError(f"unknown input(s) {unknown}; the model's inputs are {sorted(known)}")
        checked: dict[str, np.ndarray] = {}
        for name, value in known.items():
            if name not in inputs:
                if name in self._constants:
                    continue
                raise InputMismatchError(f"missing input {name!r}")
            checked[name] = _coerce_input(value, inputs[name])
        return checked


def _coerce_input(value: ir.Value, array: Any) -> np.ndarray:
    """Check an input array against the declared type/shape; cast floats to the declared float type."""
    arr = np.asarray(array)
    if value.dtype is not None:
        want = np.dtype(value.dtype.numpy())
        if arr.dtype != want:
            same_kind = arr.dtype.kind == want.kind or (arr.dtype.kind in "iu" and want.kind in "iu")
            if not same_kind and not (arr.dtype.kind in "iu" and want.kind == "f"):
                raise InputMismatchError(f"input {value.name!r}: expected {want}, got {arr.dtype}")
            arr = arr.astype(want)
    if value.shape is not None:
        dims = list(value.shape)
        if arr.ndim != len(dims):
            raise InputMismatchError(f"input {value.name!r}: expected rank {len(dims)} {value.shape}, got shape {arr.shape}")
        for axis, (dim, got) in enumerate(zip(dims, arr.shape)):
            if isinstance(dim, int) and dim != got:
                raise InputMismatchError(
                    f"input {value.name!r}: expected shape {tuple(value.shape)}, got {arr.shape} (axis {axis})"
                )
    return arr


def _infer_without_modifying(model: ir.Model, input_shapes: Mapping[str, tuple[int, ...]]) -> dict[int, tuple[Any, Any]]:
    """id(value) -> (dtype, shape) from shape inference with the graph inputs set to
    ``input_shapes``; afterwards every value's own type and shape is put back."""
    from qonnx_tools.shape_inference import infer_shapes

    values = list(_all_values(model.graph))
    saved = [(v, v.type, v.shape) for v in values]
    try:
        for value in model.graph.inputs:
            if value.name in input_shapes:
                value.shape = ir.Shape(list(input_shapes[value.name]))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                infer_shapes(model)
            except QonnxToolsError:
                pass  # a cycle or similar: the run itself reports it
        return {id(v): (v.dtype, v.shape) for v in values}
    finally:
        for value, type_, shape in saved:
            value.type = type_
            value.shape = shape


def _value_bytes(dtype: Any, shape: Any, bound: Mapping[str, int]) -> int | None:
    """Bytes of a tensor of ``dtype`` and ``shape`` with symbolic dims from ``bound``; None if unknown."""
    if dtype is None or shape is None:
        return None
    dims = []
    for dim in shape:
        if isinstance(dim, int):
            dims.append(dim)
        elif getattr(dim, "value", None) in bound:
            dims.append(bound[dim.value])
        else:
            return None
    if any(d < 0 for d in dims):
        return None
    try:
        itemsize = np.dtype(dtype.numpy()).itemsize
    except Exception:  # a type NumPy has no container for
        itemsize = 4
    return math.prod(dims) * itemsize


def _all_values(graph: ir.Graph):
    """Every value of ``graph`` and its subgraphs: inputs, initializers, node outputs."""
    seen: set[int] = set()
    graphs = [graph]
    for node in ir.traversal.RecursiveGraphIterator(graph):
        graphs.extend(subgraphs(node))
    for g in graphs:
        for value in [*g.inputs, *g.initializers.values(), *(v for node in g for v in node.outputs)]:
            if id(value) not in seen:
                seen.add(id(value))
                yield value


def available_memory_bytes() -> int | None:
    """Memory this process can still allocate: the least of /proc/meminfo's MemAvailable,
    the cgroup (v2) limit minus its usage, and sysconf's available pages; None if unknown."""
    candidates: list[int] = []
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    candidates.append(int(line.split()[1]) * 1024)
                    break
    except (OSError, ValueError, IndexError):
        pass
    try:
        with open("/sys/fs/cgroup/memory.max", encoding="ascii") as handle:
            limit = handle.read().strip()
        if limit != "max":
            with open("/sys/fs/cgroup/memory.current", encoding="ascii") as handle:
                used = int(handle.read().strip())
            candidates.append(max(int(limit) - used, 0))
    except (OSError, ValueError):
        pass
    if not candidates:
        try:
            candidates.append(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
        except (OSError, ValueError, AttributeError):
            pass
    return min(candidates) if candidates else None


def _bytes_text(n: int) -> str:
    for unit, size in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} bytes"


def _read(env: Mapping[str, np.ndarray], forced: Mapping[str, np.ndarray], name: str | None) -> np.ndarray | None:
    if name is None:
        return None
    return forced[name] if name in forced else env[name]


def execute(model: ir.Model, inputs: Mapping[str, Any], *, keep_intermediates: bool = False) -> dict[str, np.ndarray]:
    """Run ``model`` once on ``inputs``; prefer an ``Executor`` when running repeatedly."""
    return Executor(model).run(inputs, keep_intermediates=keep_intermediates)
