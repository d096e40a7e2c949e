"""batchnorm-to-affine: inference BatchNormalization -> Mul + Add with per-channel constants.

``y = (x - mean) / sqrt(var + eps) * scale + bias`` becomes ``y = x * a + b`` with

    a = scale / sqrt(var + eps)        b = bias - mean * a

computed at conversion time, in the same precision and order as the executor's
BatchNormalization kernel (float32 for float32/float16/bfloat16 inputs, float64
for float64), then stored in the input's element type. For float32/float64
models the rewritten graph therefore computes bit-for-bit what the executor
computed for the BatchNormalization (``x * a`` then ``+ b``, each rounded once);
other runtimes that evaluate BN in another order differ by float reassociation.
float16/bfloat16 inputs round after the Mul and after the Add (the kernel
rounds once at the end).

``a`` and ``b`` are shaped ``(C, 1, ..., 1)`` (rank - 1 dims) so that they
broadcast on the channel axis (axis 1) of an input of any rank >= 2. Opset <= 8
``spatial=0`` parameters (one value per (C, D1, ...) element) are used as they are.

Declines (node left unchanged, reason in the pass's ``declined`` list) when

- ``training_mode=1`` (batch statistics), or a mean/variance output is used;
- scale, bias, mean or var is not constant -- a graph input, or an initializer
  that is also listed as a graph input (overridable; Brevitas exports do this:
  run ``remove-static-inputs`` first);
- the input's rank is unknown (run ``infer-shapes`` first) or below 2;
- the input is not floating point, or the parameter lengths disagree;
- the ai.onnx opset is below 7 (Mul/Add would need the legacy ``broadcast``
  attribute; run ``opset-upgrade`` first).

The old parameter initializers are removed when nothing else uses them.

Implementation: onnxscript's pattern rewriter -- a one-node pattern
``BatchNormalization(x, scale, bias, mean, var)``, a condition that states why it
declines (a ``Decline``, recorded on the pass and handed to the rewriter as
``MatchResult.fail`` by ``rewriter_condition``), and a Mul + Add replacement. It fits: one node
in, two nodes out, and the rewriter takes care of rewiring, of keeping the output
name (graph outputs stay named), of refusing when extra BN outputs are in use,
and of subgraphs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qonnx_tools._ir import ir, rewriter
from qonnx_tools.constants import constant_array
from qonnx_tools.decline import Decline
from qonnx_tools.domains import STANDARD, opset_of
from qonnx_tools.passes._rewrite import all_value_names, rewriter_condition, unique_name
from qonnx_tools.passes.base import PassResult, QonnxPass

_PARAMS = ("scale", "bias", "mean", "var")


@dataclass
class _Affine:
    factor: np.ndarray
    shift: np.ndarray


def _rank(node: ir.Node, x: ir.Value) -> int | None:
    for value in (x, node.outputs[0]):
        if value is not None and value.shape is not None:
            return len(value.shape)
    return None


def _float_dtype(x: ir.Value, arrays: list[np.ndarray]) -> np.dtype | Decline:
    if x.dtype is not None:
        if not x.dtype.is_floating_point():
            return Decline(f"input is {x.dtype.name}, not floating point", x)
        return np.dtype(x.dtype.numpy())
    dtype = np.dtype(arrays[0].dtype)  # scale has the input's type (T) before opset 15
    if not ir.DataType.from_numpy(dtype).is_floating_point():
        return Decline(f"parameters are {dtype}, not floating point")
    return dtype


def plan_affine(node: ir.Node) -> _Affine | Decline:
    """The (factor, shift) constants replacing ``node``, or why it cannot be replaced."""
    if node.attributes.get_int("training_mode", 0):
        return Decline("training_mode=1 (uses batch statistics)")
    x = node.inputs[0] if node.inputs else None
    if x is None or len(node.inputs) < 5:
        return Decline("missing inputs")
    arrays: list[np.ndarray] = []
    problems = []
    for label, value in zip(_PARAMS, node.inputs[1:5]):
        array = constant_array(value, overridable=False)
        if array is None:
            if value is not None and value.const_value is not None and value.is_graph_input():
                problems.append(
                    f"{label} {value.name!r} is also a graph input (overridable; run remove-static-inputs first)"
                )
            else:
                problems.append(f"{label} {value.name if value is not None else None!r} is not constant")
        else:
            arrays.append(array)
    if problems:
        return Decline("; ".join(problems))
    shapes = {a.shape for a in arrays}
    if len(shapes) != 1:
        return Decline(f"parameter shapes differ: {[a.shape for a in arrays]}")
    dtype = _float_dtype(x, arrays)
    if isinstance(dtype, Decline):
        return dtype
    rank = _rank(node, x)
    (shape,) = shapes
    if len(shape) <= 1:
        if rank is None:
            return Decline("rank of the input is unknown (run infer-shapes first)", x)
        if rank < 2:
            return Decline(f"input rank {rank} < 2 (no channel axis)", x)
        target = (-1,) + (1,) * (rank - 2)
    else:  # spatial=0 parameters: (C, D1, ..., Dn) broadcast as they are
        if rank is not None and rank != len(shape) + 1:
            return Decline(f"spatial=0 parameters of shape {shape} do not fit an input of rank {rank}")
        target = shape
    acc = np.dtype(np.float64) if dtype == np.float64 else np.dtype(np.float32)
    scale, bias, mean, var = (np.asarray(a).astype(acc) for a in arrays)
    eps = np.asarray(node.attributes.get_float("epsilon", 1e-5), dtype=acc)
    factor = scale / np.sqrt(var + eps)
    shift = bias - mean * factor
    return _Affine(factor.astype(dtype).reshape(target), shift.astype(dtype).reshape(target))


class _BatchNormRule:
    def __init__(self, names: set[str], owner: QonnxPass) -> None:
        self.names, self.owner = names, owner  # owner: the pass that records declines
        self.sources: list[ir.Value] = []

    def rule(self):
        def target(op, x, scale, bias, mean, var):
            return op.BatchNormalization(x, scale, bias, mean, var, _allow_other_attributes=True, _outputs=["y"])

        return rewriter.pattern.RewriteRule(target, self._replace, self._condition)

    def _condition(self, context, y, **_):
        node = y.producer()
        if isinstance(context.graph_or_function, ir.Function):
            plan = Decline("inside a model-local function (no initializers there)")
        elif opset_of(context.model, STANDARD) < 7:
            plan = Decline(
                "ai.onnx opset < 7 (Mul/Add would need legacy broadcast attributes); run opset-upgrade first"
            )
        else:
            plan = plan_affine(node)
        return rewriter_condition(self.owner, node, plan)

    def _replace(self, op, x, y, **_):
        node = y.producer()
        plan = plan_affine(node)
        if isinstance(plan, Decline):  # pragma: no cover - the condition rejected (and recorded) it already
            return None
        base = node.name or y.name or "batchnorm"
        factor = op.initializer(ir.Tensor(plan.factor), name=unique_name(f"{base}_factor", self.names))
        shift = op.initializer(ir.Tensor(plan.shift), name=unique_name(f"{base}_shift", self.names))
        self.sources.extend(v for v in node.inputs[1:5] if v is not None)
        scaled = op.Mul(x, factor, _name=unique_name(f"{base}_mul", self.names))
        out = op.Add(scaled, shift, _name=node.name)
        out.meta.update(y.meta)  # quantized-datatype annotations; name, type and shape follow in the rewriter
        out.metadata_props.update(y.metadata_props)
        return out

    def drop_unused_sources(self) -> None:
        for value in self.sources:
            if value.uses() or value.is_graph_output() or value.is_graph_input():
                continue
            producer = value.producer()
            if producer is not None:
                if producer.graph is not None and not any(o.uses() or o.is_graph_output() for o in producer.outputs):
                    producer.graph.remove(producer, safe=True)
            elif value.graph is not None and value.graph.initializers.get(value.name) is value:
                value.graph.initializers.pop(value.name)


@dataclass
class BatchNormToAffine(QonnxPass, name="batchnorm-to-affine"):
    """inference BatchNormalization with constant parameters -> Mul + Add by per-channel constants (axis 1)"""

    def call(self, model: ir.Model) -> PassResult:
        rule = _BatchNormRule(all_value_names(model), self)
        count = rewriter.RewriteRuleSet([rule.rule()]).apply_to_model(model)
        if count:
            rule.drop_unused_sources()
        return PassResult(model, bool(count))
