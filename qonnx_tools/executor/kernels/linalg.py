"""Linear algebra: MatMul, Gemm, MatMulInteger, Einsum.

float32/float64 multiply in their own precision (BLAS); float16/bfloat16 in float32, rounded
once at the end; integers exactly (int64 accumulation, cast to the ONNX output type).
"""

from __future__ import annotations

import numpy as np

from qonnx_tools.executor.kernels._spatial import integer_matmul
from qonnx_tools.executor.registry import NodeContext, register


def compute_dtype(dtype: np.dtype) -> np.dtype:
    """Arithmetic dtype for ``dtype`` inputs (narrow floats widen to float32, ints to int64/uint64)."""
    dtype = np.dtype(dtype)
    if dtype in (np.float32, np.float64) or dtype.kind == "c":
        return dtype
    if dtype.kind == "u":
        return np.dtype(np.uint64)
    if dtype.kind in "ib":
        return np.dtype(np.int64)
    return np.dtype(np.float32)


@register("MatMul", since=1)
def matmul(ctx: NodeContext, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """numpy.matmul semantics (1-D operands promoted and squeezed, batch broadcasting)."""
    if a.dtype.kind in "iu":
        return integer_matmul(a, b).astype(a.dtype)  # exact, wraps like the fixed-width type
    acc = compute_dtype(a.dtype)
    return np.matmul(a.astype(acc, copy=False), b.astype(acc, copy=False)).astype(a.dtype, copy=False)


@register("Gemm", since=1)
def gemm(ctx: NodeContext, a: np.ndarray, b: np.ndarray, c: np.ndarray | None = None) -> np.ndarray:
    """alpha * A' @ B' + beta * C with optional transposes and unidirectional broadcast of C."""
    dtype, acc = a.dtype, compute_dtype(a.dtype)
    a = a.astype(acc, copy=False)
    b = b.astype(acc, copy=False)
    if ctx.attr("transA", 0):
        a = a.T
    if ctx.attr("transB", 0):
        b = b.T
    alpha, beta = _factor(ctx.attr("alpha", 1.0), acc), _factor(ctx.attr("beta", 1.0), acc)
    y = integer_matmul(a, b) if acc.kind in "iu" else a @ b
    if alpha != 1:
        y = y * alpha
    if c is not None and beta != 0:
        c = c.astype(acc, copy=False)
        y = y + (c if beta == 1 else c * beta)
    return y.astype(dtype, copy=False)


def _factor(value: float, acc: np.dtype) -> np.generic | float:
    """alpha/beta in the float accumulator's precision (a Python float for integer Gemm)."""
    return np.asarray(value, dtype=acc)[()] if acc.kind == "f" else float(value)


def _zero_point(zp: np.ndarray | None, axis_from_end: int) -> np.ndarray | int:
    """Zero point as int64: scalar, or a vector along the row (-2) / column (-1) axis."""
    if zp is None:
        return 0
    zp = np.asarray(zp).astype(np.int64)
    if zp.ndim == 1 and zp.size > 1 and axis_from_end == -2:
        return zp.reshape(-1, 1)
    return zp


@register("MatMulInteger", since=10)
def matmul_integer(
    ctx: NodeContext, a: np.ndarray, b: np.ndarray, a_zp: np.ndarray | None = None, b_zp: np.ndarray | None = None
) -> np.ndarray:
    """Exact (A - a_zero_point) @ (B - b_zero_point) as int32; a per-row, b per-column zero points."""
    ai = a.astype(np.int64) - _zero_point(a_zp, -2)
    bi = b.astype(np.int64) - _zero_point(b_zp, -1)
    return integer_matmul(ai, bi).astype(np.int32)


@register("Einsum", since=12)
def einsum(ctx: NodeContext, *operands: np.ndarray) -> np.ndarray:
    """numpy.einsum on the equation (explicit or implicit output, ellipsis broadcasting)."""
    equation = str(ctx.required_attr("equation")).replace(" ", "")
    dtype = operands[0].dtype
    acc = compute_dtype(dtype)
    result = np.einsum(equation, *(op.astype(acc, copy=False) for op in operands))
    return np.asarray(result).astype(dtype, copy=False)
