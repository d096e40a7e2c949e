"""BipolarQuant: binarize to {-scale, +scale}."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from qonnx_tools.datatypes import BIPOLAR, DataType
from qonnx_tools.executor.registry import NodeContext
from qonnx_tools.ops import register_op
from qonnx_tools.ops._rounding import all_equal, check_broadcast, float_param, work_dtype
from qonnx_tools.ops.base import InputSpec, QonnxOp, TensorInfo


@register_op
class BipolarQuant(QonnxOp):
    """``Y = (+1 if X >= 0 else -1) * scale``.

    Zero maps to ``+scale``; NaN (which is not ``>= 0``) maps to ``-scale``.
    Computed in X's float dtype (float32 for non-float X). ``scale`` must be
    finite and broadcast to X's shape.
    """

    name = "BipolarQuant"
    inputs = (
        InputSpec("X", "tensor to binarize"),
        InputSpec("scale", "scale factor, scalar or broadcastable to X"),
    )

    @classmethod
    def execute(cls, ctx: NodeContext, *inputs: np.ndarray | None) -> np.ndarray:
        x, scale = inputs
        dtype = work_dtype(x)
        x = np.asarray(x)
        scale = float_param(scale, dtype, ctx, "scale")
        check_broadcast(ctx, x.shape, scale=scale)
        signs = np.where(x >= 0, dtype.type(1), dtype.type(-1))
        return np.asarray(signs * scale, dtype=dtype)

    @classmethod
    def infer_datatypes(cls, ctx: NodeContext, inputs: Sequence[TensorInfo]) -> list[DataType | None]:
        """BIPOLAR when scale is a constant 1 everywhere, SCALEDINT<1> otherwise."""
        if len(inputs) > 1 and all_equal(inputs[1].value, 1.0):
            return [BIPOLAR]
        return [DataType.scaled_int(1)]
