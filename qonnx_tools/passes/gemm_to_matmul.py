"""gemm-to-matmul: ``Gemm(A, B, C)`` -> ``MatMul`` (+ ``Mul`` for alpha) (+ ``Add`` for C).

``Y = alpha * A' @ B' + beta * C`` (``A'`` = A or A^T by ``transA``, same for B) becomes

    MatMul(A', B')  [ -> Mul(., alpha) ]  [ -> Add(., C') ]

- ``transA`` / ``transB``: a constant operand is transposed now (a new
  initializer; the old one is removed when nothing else uses it); a dynamic one
  gets a ``Transpose`` node.
- ``alpha != 1``: folded into whichever of A/B is constant (looked up, not
  assumed to be B), else a ``Mul`` by a scalar constant after the MatMul.
  Folding rounds ``alpha * B`` once, so results can differ from the Gemm in the
  last bits unless alpha is a power of two.
- ``C`` (with ``beta``): ``beta * C`` is folded when C is constant, else a ``Mul``
  by a scalar; then an ``Add``. Gemm broadcasts C to (M, N); Add of the
  (M, N) product broadcasts it the same way. With ``beta == 0`` C is dropped
  (so a C holding inf/NaN no longer poisons the result -- as in runtimes that
  skip C when beta is 0).

Constants are initializers that are not graph inputs, or ``Constant`` outputs;
an initializer listed as a graph input (Brevitas) is overridable and treated as
dynamic (run ``remove-static-inputs`` first to fold into it). Transformed
constants are shared between Gemms that use the same constant the same way.

Declines (reason in ``declined``): integer Gemm with ``alpha != 1`` or
``beta`` not 0/1 (a float factor would change the type), a scalar factor
needed while the element type is unknown (run ``infer-shapes``), and models
below ai.onnx opset 7 (Add/Mul broadcasting needed attributes then; run
``opset-upgrade`` first).

Implementation: plain use-def code, not the pattern rewriter: one Gemm turns
into 1-5 nodes depending on six independent choices (two transposes, which
operand is constant, alpha, C, beta), which is a short imperative function but
a combinatorial set of patterns. One linear sweep; new nodes go where the Gemm
was (``ir.convenience.replace_nodes_and_values``), keeping the output's name,
type, shape and annotations.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from qonnx_tools._ir import ir
from qonnx_tools.constants import constant_array
from qonnx_tools.decline import Decline
from qonnx_tools.domains import STANDARD, canonical_domain, opset_of
from qonnx_tools.passes._rewrite import all_value_names, drop_if_unused, new_initializer, unique_name
from qonnx_tools.passes.base import PassResult, QonnxPass

_LEGACY = "ai.onnx opset < 7 (Add/Mul would need legacy broadcast attributes); run opset-upgrade first"

@dataclass
class _Rewriter:
    """State of one run: fresh names, shared transformed constants, values to clean up."""

    names: set[str]
    cache: dict[tuple, ir.Value] = field(default_factory=dict)
    sources: list[ir.Value] = field(default_factory=list)

    def initializer(self, graph: ir.Graph, array: np.ndarray, base: str, like: ir.Value | None = None) -> ir.Value:
        return new_initializer(graph, array, unique_name(base, self.names), like)

    def constant(
        self, graph: ir.Graph, source: ir.Value, array: np.ndarray, transpose: bool, factor: float
    ) -> ir.Value:
        """``source`` (constant ``array``) transposed and/or scaled, as a shared initializer."""
        if not transpose and factor == 1.0:
            return source
        key = (id(source), transpose, factor, id(graph))
        if key not in self.cache:
            out = array.T if transpose else array
            if factor != 1.0:
                out = (out.astype(np.float64) * factor).astype(array.dtype)
            suffix = ("_T" if transpose else "") + ("_scaled" if factor != 1.0 else "")
            self.cache[key] = self.initializer(
                graph, out, (source.name or "const") + suffix, like=source if factor == 1.0 else None
            )
            self.sources.append(source)
        return self.cache[key]

    def drop_unused_sources(self) -> None:
        for value in self.sources:
            drop_if_unused(value)




def _element_type(node: ir.Node, arrays: list[np.ndarray | None]) -> ir.DataType | None:
    for value in (*node.inputs[:2], node.outputs[0]):
        if value is not None and value.dtype is not None:
            return value.dtype
    for array in arrays:
        if array is not None:
            return ir.DataType.from_numpy(array.dtype)
    return None


def convert_gemm(node: ir.Node, state: _Rewriter) -> Decline | None:
    """Replace one Gemm; returns None on success, else why it was left alone."""
    graph = node.graph
    if graph is None or len(node.inputs) < 2 or node.inputs[0] is None or node.inputs[1] is None:
        return Decline("missing inputs")
    a, b = node.inputs[0], node.inputs[1]
    c = node.inputs[2] if len(node.inputs) > 2 else None
    alpha = node.attributes.get_float("alpha", 1.0)
    beta = node.attributes.get_float("beta", 1.0)
    trans_a, trans_b = bool(node.attributes.get_int("transA", 0)), bool(node.attributes.get_int("transB", 0))
    a_arr, b_arr = constant_array(a, overridable=False), constant_array(b, overridable=False)
    c_arr = constant_array(c, overridable=False) if c is not None else None
    if c is not None and beta == 0.0:
        c = c_arr = None
    dtype = _element_type(node, [a_arr, b_arr, c_arr])
    is_float = dtype is not None and dtype.is_floating_point()
    if dtype is not None and not is_float:
        if alpha != 1.0:
            return Decline(f"integer Gemm ({dtype.name}) with alpha={alpha}")
        if c is not None and beta != 1.0:
            return Decline(f"integer Gemm ({dtype.name}) with beta={beta}")
    needs_alpha_mul = alpha != 1.0 and a_arr is None and b_arr is None
    needs_beta_mul = c is not None and beta != 1.0 and c_arr is None
    if (needs_alpha_mul or needs_beta_mul) and dtype is None:
        return Decline("element type unknown, needed for a scalar factor (run infer-shapes first)")

    base = node.name or node.outputs[0].name or "gemm"
    new_nodes: list[ir.Node] = []

    def add_node(op_type: str, inputs, suffix: str, **attrs) -> ir.Value:
        new = ir.node(op_type, inputs, attributes=attrs or None, name=unique_name(f"{base}{suffix}", state.names))
        new_nodes.append(new)
        return new.outputs[0]

    def scalar(value: float, suffix: str) -> ir.Value:
        return state.initializer(graph, np.array(value, dtype=dtype.numpy()), f"{base}{suffix}")

    # alpha goes into B when B is constant, else into A when A is constant.
    alpha_b = alpha if b_arr is not None else 1.0
    alpha_a = alpha if b_arr is None and a_arr is not None else 1.0

    def operand(value: ir.Value, array: np.ndarray | None, transpose: bool, factor: float, label: str) -> ir.Value:
        if array is not None:
            return state.constant(graph, value, array, transpose, factor)
        if transpose:
            return add_node("Transpose", [value], f"_transpose_{label}", perm=[1, 0])
        return value

    a_in = operand(a, a_arr, trans_a, alpha_a, "a")
    b_in = operand(b, b_arr, trans_b, alpha_b, "b")
    matmul = ir.node("MatMul", [a_in, b_in], name=node.name)
    new_nodes.append(matmul)
    y = matmul.outputs[0]
    if needs_alpha_mul:
        y = add_node("Mul", [y, scalar(alpha, "_alpha")], "_alpha")
    if c is not None:
        if c_arr is not None:
            c_in = state.constant(graph, c, c_arr, False, beta)
        elif beta != 1.0:
            c_in = add_node("Mul", [c, scalar(beta, "_beta")], "_beta")
        else:
            c_in = c
        y = add_node("Add", [y, c_in], "_bias")

    old = node.outputs[0]
    for new in new_nodes:
        new.metadata_props.update(node.metadata_props)
    y.meta.update(old.meta)
    y.metadata_props.update(old.metadata_props)
    if y is not matmul.outputs[0] and old.dtype is not None:
        matmul.outputs[0].type = old.type
    inputs = [v for v in node.inputs if v is not None]
    ir.convenience.replace_nodes_and_values(graph, node, [node], new_nodes, [old], [y])
    state.sources.extend(inputs)
    return None


@dataclass
class GemmToMatMul(QonnxPass, name="gemm-to-matmul"):
    """Gemm -> MatMul (+ Add for C): transposes folded into constants or explicit Transpose nodes, alpha/beta
    as constant Mul factors (folded into constants when possible)"""

    def call(self, model: ir.Model) -> PassResult:
        gemms = [
            node
            for node in ir.traversal.RecursiveGraphIterator(model.graph)
            if node.op_type == "Gemm" and canonical_domain(node.domain) == STANDARD
        ]
        if not gemms:
            return PassResult(model, False)
        state = _Rewriter(all_value_names(model))
        opset = opset_of(model, STANDARD)
        modified = self.rewrite_each(gemms, lambda node: Decline(_LEGACY) if opset < 7 else convert_gemm(node, state))
        state.drop_unused_sources()
        return PassResult(model, modified)
