"""BipolarQuant: binarize to {-scale, +scale}."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from qonnx_tools import lowering as L
from qonnx_tools._ir import ir
from qonnx_tools.datatypes import BIPOLAR, DataType
from qonnx_tools.decline import Decline
from qonnx_tools.node_context import NodeContext
from qonnx_tools.ops import register_op
from qonnx_tools.ops._rounding import all_equal, check_broadcast, float_param, work_dtype
from qonnx_tools.ops._params import ParamCheck
from qonnx_tools.ops.base import InputSpec, ParamProblem, QonnxOp, TensorInfo


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

    # -- parameter legality -------------------------------------------------------------------
    @classmethod
    def check_params(cls, attrs, params, x_shape) -> list[ParamProblem]:
        """scale finite and > 0, broadcasting to X."""
        p = ParamCheck(params, x_shape)
        p.positive("scale")
        return p.problems

    # -- lowering to standard ONNX (QCDQ) -----------------------------------------------------
    @classmethod
    def lower_qcdq(cls, node, ctx):
        """Rule of the QONNX -> QCDQ conversion (see qonnx_tools.lowering).

        QuantizeLinear cannot map 0 to +1, so activations become
        ``Where(GreaterOrEqual(X, 0), scale, -scale)`` (NaN -> -scale, as ``execute``);
        with a run-time scale ``Where(X >= 0, 1, -1) * scale``. Constant X with a
        constant scale (binary weights) becomes a +-1 int8 initializer (int4 from opset
        21) + DequantizeLinear(scale), per-tensor or per-axis; other scale layouts fold.
        """
        nctx = ctx.node_context(node, cls)
        x_v, s_v = node.inputs[0], node.inputs[1]
        refused = L.x_float32(x_v)
        if refused is not None:
            return refused
        f32 = np.dtype(np.float32)
        xc = ctx.constant(x_v)
        sc = ctx.constant(s_v)
        sc = None if sc is None else float_param(sc, f32, nctx, "scale")
        b = ctx.builder(node)
        if xc is not None and sc is not None:
            xc = np.asarray(xc)
            check_broadcast(nctx, xc.shape, scale=sc)
            gran = L.granularity([sc.shape], xc.shape)
            why = gran if isinstance(gran, str) else None
            if why is None and gran.min_opset > ctx.opset:
                why = f"{gran.describe()} DequantizeLinear needs opset {gran.min_opset}"
            if why is None:
                codes = np.where(xc >= 0, 1, -1)
                choice = L.choose_container(-1, 1, np.zeros(1), signed=True, opset=ctx.opset,
                                            economical=ctx.economical, activation=False)
                y, pattern = L.emit_dequantized_constant(b, codes, gran, sc, None, choice[0])
                if b.min_opset <= ctx.opset:
                    return b.rewrite(y, pattern, "dequantized-constant")
                b = ctx.builder(node)
                why = f"{pattern} needs opset {b.min_opset}"
            y, pattern = L.emit_fold(b, cls.execute(nctx, xc, sc))
            return b.rewrite(y, f"{pattern} ({why})", "folded")
        reached = b.op("GreaterOrEqual", [x_v, b.f32("zero", 0.0)], "non_negative")
        if sc is not None:
            y = b.op("Where", [reached, b.f32("scale", sc), b.f32("neg_scale", -sc)], "bipolar")
            pattern = "emulation: Where(X >= 0, scale, -scale)"
        else:
            signs = b.op("Where", [reached, b.f32("plus_one", 1.0), b.f32("minus_one", -1.0)], "signs")
            scale = s_v
            if s_v.dtype is not None and s_v.dtype != ir.DataType.FLOAT:
                scale = b.op("Cast", [s_v], "scale_f32", to=1)
            y = b.op("Mul", [signs, scale], "mul_scale")
            pattern = "emulation: Where(X >= 0, 1, -1) * scale"
        if b.min_opset > ctx.opset:
            return Decline(f"{pattern} needs opset {b.min_opset}")
        return b.rewrite(y, pattern, "emulation")
