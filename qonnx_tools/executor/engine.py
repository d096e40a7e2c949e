"""Whole-graph NumPy executor: the definition of qonnx_tools' numerics.

An ``Executor`` prepares a model once (topological order, one kernel and one set of
decoded attributes per node, constant arrays, last-use counts) and can then be
run many times. Intermediate arrays are freed right after their last consumer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from qonnx_tools import ops as qonnx_ops
from qonnx_tools._ir import ir
from qonnx_tools.domains import STANDARD, canonical_domain
from qonnx_tools.errors import ExecutionError, InputMismatchError, QonnxToolsError, UnsupportedOpError
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


class Executor:
    """Runs one model many times with NumPy kernels; build once, call ``run`` per input batch."""

    def __init__(self, model: ir.Model) -> None:
        self.model = model
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
        kernel, attrs, opset = resolve_kernel(node, model)
        ctx = registry.NodeContext(
            name=node.name or "",
            op_type=node.op_type,
            domain=canonical_domain(node.domain),
            opset=opset,
            attrs=attrs,
            n_outputs=len(node.outputs),
        )
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

    def run(self, inputs: Mapping[str, Any], *, keep_intermediates: bool = False) -> dict[str, np.ndarray]:
        """Outputs by name (all intermediate tensors too when ``keep_intermediates``)."""
        env: dict[str, np.ndarray] = dict(self._constants)
        env.update(self._check_inputs(inputs))
        for step in self._steps:
            args = [env[name] if name is not None else None for name in step.inputs]
            results = self._call(step, args)
            for name, value in zip(step.outputs, results):
                if name:
                    env[name] = value
            if not keep_intermediates:
                for name in step.free_after:
                    env.pop(name, None)
        if keep_intermediates:
            return {k: v for k, v in env.items() if k not in self._constants or k in self._output_names}
        return {name: env[name] for name in self._output_names}

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


def execute(model: ir.Model, inputs: Mapping[str, Any], *, keep_intermediates: bool = False) -> dict[str, np.ndarray]:
    """Run ``model`` once on ``inputs``; prefer an ``Executor`` when running repeatedly."""
    return Executor(model).run(inputs, keep_intermediates=keep_intermediates)
