"""Trunc: drop least-significant bits of an integer-valued quantized tensor (versions 1 and 2)."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from qonnx_tools import lowering as L
from qonnx_tools._ir import ir
from qonnx_tools.datatypes import DataType
from qonnx_tools.decline import Decline
from qonnx_tools.errors import InvalidAttributeError
from qonnx_tools.node_context import NodeContext
from qonnx_tools.ops import register_op
from qonnx_tools.ops._rounding import (
    MAX_BITS,
    ROUNDING_MODES,
    all_equal,
    bounds_in_dtype,
    check_broadcast,
    emit_int_bounds,
    emit_rounding,
    constant,
    float_param,
    int_bounds,
    integer_param,
    normalise_rounding_mode,
    round_values,
    where,
    work_dtype,
)
from qonnx_tools.ops._params import ERROR, WARNING, ParamCheck, shown
from qonnx_tools.ops.base import AttrSpec, InputSpec, ParamProblem, QonnxOp, TensorInfo

_ROUNDING = AttrSpec(
    "rounding_mode",
    str,
    "FLOOR",
    allowed=ROUNDING_MODES,
    normalise=normalise_rounding_mode,
    doc="how the truncated value is rounded; case-insensitive",
)


def _to_int_grid(x: np.ndarray, scale: np.ndarray, zeropt: np.ndarray) -> np.ndarray:
    """``rint(X / scale + zeropt)``: the integer the input represents (cleans float error)."""
    y = np.asarray(x / scale)
    y += zeropt
    return np.asarray(np.rint(y))


@register_op
class Trunc(QonnxOp):
    """Trunc version 1: shift out ``in_bitwidth - out_bitwidth`` low bits.

    ``v = rint(X / scale + zeropt)`` (ties to even), ``t = rounding_mode(v / 2**(in_bitwidth - out_bitwidth))``,
    ``Y = (t - zeropt) * scale``.

    As the version-1 spec defines it, the result is *not* clamped and is rescaled
    with the input ``scale`` (not ``scale * 2**(in - out)``): with scale 1, an
    8-bit input truncated to 4 bits gives ``floor(v / 16)``. Version 2 fixes the
    output scale.

    The bit widths may be int or float tensors holding integers in 1..64. The spec
    lists ROUND, CEIL and FLOOR; the other IntQuant modes (UP, DOWN, HALF_UP,
    HALF_DOWN) are accepted too, with the same meaning. Arithmetic is in X's float
    dtype; the division by the power of two is exact.
    """

    name = "Trunc"
    since_version = 1
    inputs = (
        InputSpec("X", "tensor to truncate"),
        InputSpec("scale", "scale factor of the input"),
        InputSpec("zeropt", "zero-point of the input"),
        InputSpec("in_bitwidth", "bits of the input integers"),
        InputSpec("out_bitwidth", "bits kept"),
    )
    attributes = (_ROUNDING,)

    @classmethod
    def execute(cls, ctx: NodeContext, *inputs: np.ndarray | None) -> np.ndarray:
        x, scale, zeropt, in_bitwidth, out_bitwidth = inputs
        dtype = work_dtype(x)
        x = np.asarray(x).astype(dtype, copy=False)
        scale = float_param(scale, dtype, ctx, "scale", nonzero=True)
        zeropt = float_param(zeropt, dtype, ctx, "zeropt")
        in_bits = integer_param(in_bitwidth, ctx, "in_bitwidth", maximum=MAX_BITS)
        out_bits = integer_param(out_bitwidth, ctx, "out_bitwidth", maximum=MAX_BITS)
        check_broadcast(ctx, x.shape, scale=scale, zeropt=zeropt, in_bitwidth=in_bits, out_bitwidth=out_bits)
        y = _to_int_grid(x, scale, zeropt)
        y = np.asarray(np.ldexp(y, (out_bits - in_bits).astype(np.int32)), dtype=dtype)
        y = np.asarray(round_values(y, ctx.attrs["rounding_mode"]))
        y -= zeropt
        y *= scale
        return y

    @classmethod
    def infer_datatypes(cls, ctx: NodeContext, inputs: Sequence[TensorInfo]) -> list[DataType | None]:
        """SCALEDINT<out_bitwidth> when out_bitwidth is constant (the sign of the input is unknown)."""
        bits = constant(inputs[4].value) if len(inputs) > 4 else None
        if bits is None:
            return [None]
        return [DataType.scaled_int(int(integer_param(bits, ctx, "out_bitwidth", maximum=MAX_BITS).max()))]

    # -- parameter legality -------------------------------------------------------------------
    @classmethod
    def check_params(cls, attrs, params, x_shape) -> list[ParamProblem]:
        """scale finite and > 0, zeropt finite, bit widths integers in 1..64 with
        ``in_bitwidth >= out_bitwidth`` (an error: a smaller in_bitwidth scales the values up)."""
        p = ParamCheck(params, x_shape)
        p.positive("scale")
        p.finite("zeropt")
        _check_bits(p, ERROR)
        return p.problems

    # -- lowering to standard ONNX (QCDQ) -----------------------------------------------------
    @classmethod
    def lower_qcdq(cls, node, ctx):
        """Rule of the QONNX -> QCDQ conversion: exact emulation, ``execute``'s order.

        ``Div(X, scale) -> [Add zp] -> Round -> Mul(2**(out - in)) -> rounding_mode ->
        [Sub zp] -> Mul(scale)``. The power of two is an exact float32 constant
        (``Pow(2, out - in)`` for run-time bit widths), so the multiplication equals
        ``ldexp``. QuantizeLinear cannot express it: it rounds half to even, Trunc floors.
        """
        nctx = ctx.node_context(node, cls)
        x_v, s_v, z_v, ib_v, ob_v = node.inputs[:5]
        refused = L.x_float32(x_v)
        if refused is not None:
            return refused
        b = ctx.builder(node)
        s, z = _lower_scale_zp(b, ctx, nctx, s_v, z_v)
        v = _lower_int_grid(b, x_v, s, z)
        ib, ob = ctx.constant(ib_v), ctx.constant(ob_v)
        if ib is not None and ob is not None:
            ib = integer_param(ib, nctx, "in_bitwidth", maximum=MAX_BITS)
            ob = integer_param(ob, nctx, "out_bitwidth", maximum=MAX_BITS)
            factor = b.f32("shift_factor", L.pow2(ob - ib))
        else:
            bits = [b.op("Cast", [val], f"{hint}_f32", to=1) for val, hint in ((ob_v, "out_bits"), (ib_v, "in_bits"))]
            factor = b.op("Pow", [b.f32("two", 2.0), b.op("Sub", bits, "shift")], "shift_factor")
        y = b.op("Mul", [v, factor], "shift")
        y = emit_rounding(b, y, nctx.attrs["rounding_mode"])
        if z is not None:
            y = b.op("Sub", [y, z], "sub_zero_point")
        y = b.op("Mul", [y, s], "mul_scale")
        if b.min_opset > ctx.opset:
            return Decline(f"emulation needs opset {b.min_opset}")
        mode = nctx.attrs["rounding_mode"]
        return b.rewrite(y, f"emulation: Div->{'Add->' if z is not None else ''}Round->Mul(2^(out-in))->{mode}->"
                            f"{'Sub->' if z is not None else ''}Mul", "emulation")


@register_op
class TruncV2(QonnxOp):
    """Trunc version 2: truncate to ``out_bitwidth`` bits with an explicit output scale.

    ``v = rint(X / scale + zeropt)``; ``k = rint(log2(out_scale / scale))`` (the
    truncation is a power-of-two rescale by ``2**k``); ``t = rounding_mode(clamp(v / 2**k,
    min_int, max_int))`` with the range of ``out_bitwidth`` bits given ``signed`` and
    ``narrow`` (as IntQuant's); ``Y = (t - zeropt / 2**k) * out_scale``.

    ``in_bitwidth`` is checked (integer in 1..64) but does not enter the arithmetic.
    ``out_scale / scale`` must be positive and finite. Rounding modes as in version 1.
    """

    name = "Trunc"
    since_version = 2
    inputs = (
        InputSpec("X", "tensor to truncate"),
        InputSpec("scale", "scale factor of the input"),
        InputSpec("zeropt", "zero-point of the input"),
        InputSpec("in_bitwidth", "bits of the input integers"),
        InputSpec("out_scale", "scale factor of the output"),
        InputSpec("out_bitwidth", "bits of the output integers"),
    )
    attributes = (
        _ROUNDING,
        AttrSpec("signed", int, 1, allowed=(0, 1), doc="1: the output range is signed"),
        AttrSpec("narrow", int, 0, allowed=(0, 1), doc="1: narrow output range"),
    )

    @classmethod
    def execute(cls, ctx: NodeContext, *inputs: np.ndarray | None) -> np.ndarray:
        x, scale, zeropt, in_bitwidth, out_scale, out_bitwidth = inputs
        dtype = work_dtype(x)
        x = np.asarray(x).astype(dtype, copy=False)
        scale = float_param(scale, dtype, ctx, "scale", nonzero=True)
        zeropt = float_param(zeropt, dtype, ctx, "zeropt")
        out_scale = float_param(out_scale, dtype, ctx, "out_scale", nonzero=True)
        integer_param(in_bitwidth, ctx, "in_bitwidth", maximum=MAX_BITS)
        out_bits = integer_param(out_bitwidth, ctx, "out_bitwidth", maximum=MAX_BITS)
        check_broadcast(ctx, x.shape, scale=scale, zeropt=zeropt, out_scale=out_scale, out_bitwidth=out_bits)
        ratio = out_scale.astype(np.float64) / scale.astype(np.float64)
        if not np.all(ratio > 0):
            raise InvalidAttributeError(f"{where(ctx)}: out_scale / scale must be positive")
        shift = np.rint(np.log2(ratio)).astype(np.int32)
        y = _to_int_grid(x, scale, zeropt)
        y = np.asarray(np.ldexp(y, -shift), dtype=dtype)
        lo, hi = bounds_in_dtype(*int_bounds(bool(ctx.attrs["signed"]), bool(ctx.attrs["narrow"]), out_bits), dtype)
        np.clip(y, lo, hi, out=y)
        y = np.asarray(round_values(y, ctx.attrs["rounding_mode"]))
        y -= np.asarray(np.ldexp(zeropt, -shift), dtype=dtype)
        y *= out_scale
        return y

    @classmethod
    def infer_datatypes(cls, ctx: NodeContext, inputs: Sequence[TensorInfo]) -> list[DataType | None]:
        """INTb/UINTb when out_scale is 1 and zeropt 0 (constants), SCALEDINT<b> otherwise; b = out_bitwidth."""
        bits = constant(inputs[5].value) if len(inputs) > 5 else None
        if bits is None:
            return [None]
        b = int(integer_param(bits, ctx, "out_bitwidth", maximum=MAX_BITS).max())
        if all_equal(inputs[4].value, 1.0) and all_equal(inputs[2].value, 0.0):
            return [DataType.int(b, signed=bool(ctx.attrs["signed"]))]
        return [DataType.scaled_int(b)]

    # -- parameter legality -------------------------------------------------------------------
    @classmethod
    def check_params(cls, attrs, params, x_shape) -> list[ParamProblem]:
        """scale and out_scale finite and > 0, zeropt finite, bit widths integers in 1..64;
        ``in_bitwidth < out_bitwidth`` is a warning (in_bitwidth does not enter version 2's
        arithmetic, and Brevitas exports such nodes)."""
        p = ParamCheck(params, x_shape)
        p.positive("scale")
        p.finite("zeropt")
        p.positive("out_scale")
        _check_bits(p, WARNING)
        return p.problems

    # -- lowering to standard ONNX (QCDQ) -----------------------------------------------------
    @classmethod
    def lower_qcdq(cls, node, ctx):
        """Rule of the QONNX -> QCDQ conversion: exact emulation, ``execute``'s order.

        ``Div(X, scale) -> [Add zp] -> Round -> Mul(2**-k) -> clamp(out range) ->
        rounding_mode (FLOOR...) -> [Sub zp * 2**-k] -> Mul(out_scale)`` with
        ``k = rint(log2(out_scale / scale))`` computed now (so scale and out_scale must be
        constant). Brevitas' own QCDQ export of Trunc rounds to nearest instead of
        flooring; this lowering keeps the node's rounding mode. With zero point 0, a
        constant out_bitwidth <= 8 and a per-tensor out_scale, the final Mul is
        followed by ``QuantizeLinear -> DequantizeLinear`` at out_scale (the same float32
        values; the next layer then reads a DequantizeLinear, which onnxruntime fuses).
        """
        nctx = ctx.node_context(node, cls)
        x_v, s_v, z_v, ib_v, os_v, ob_v = node.inputs[:6]
        refused = L.x_float32(x_v)
        if refused is not None:
            return refused
        f32 = np.dtype(np.float32)
        sc, osc = ctx.constant(s_v), ctx.constant(os_v)
        if sc is None or osc is None:
            return Decline("scale and out_scale must be constant (the power-of-two shift is computed from them)")
        sc = float_param(sc, f32, nctx, "scale", nonzero=True)
        osc = float_param(osc, f32, nctx, "out_scale", nonzero=True)
        ratio = osc.astype(np.float64) / sc.astype(np.float64)
        if not np.all(ratio > 0):
            return Decline("out_scale / scale must be positive")
        shift = np.rint(np.log2(ratio)).astype(np.int32)
        ib = ctx.constant(ib_v)
        if ib is not None:
            integer_param(ib, nctx, "in_bitwidth", maximum=MAX_BITS)
        b = ctx.builder(node)
        s = b.f32("scale", sc)
        zc = ctx.constant(z_v)
        z = None
        if zc is None:
            z = z_v if z_v.dtype in (None, ir.DataType.FLOAT) else b.op("Cast", [z_v], "zero_point_f32", to=1)
        elif np.any(float_param(zc, f32, nctx, "zeropt") != 0):
            zc = float_param(zc, f32, nctx, "zeropt")
            z = b.f32("zero_point", zc)
        v = _lower_int_grid(b, x_v, s, z)
        factor = L.pow2(-shift)
        y = b.op("Mul", [v, b.f32("shift_factor", factor)], "shift")
        signed, narrow = bool(nctx.attrs["signed"]), bool(nctx.attrs["narrow"])
        ob = ctx.constant(ob_v)
        if ob is not None:
            ob = integer_param(ob, nctx, "out_bitwidth", maximum=MAX_BITS)
            lo, hi = bounds_in_dtype(*int_bounds(signed, narrow, ob), f32)
            if np.unique(lo).size == 1 and np.unique(hi).size == 1:
                lo, hi = lo.reshape(-1)[0], hi.reshape(-1)[0]
            y = L.emit_clamp(b, y, lo, hi)
        else:
            lo_v, hi_v = emit_int_bounds(b, ob_v, signed, narrow)
            y = b.op("Min", [b.op("Max", [y, lo_v], "clamp_min"), hi_v], "clamp_max")
        y = emit_rounding(b, y, nctx.attrs["rounding_mode"])
        if z is not None:
            if zc is not None:
                zs = b.f32("zero_point_shifted", np.asarray(np.ldexp(zc, -shift), dtype=f32))
            else:
                zs = b.op("Mul", [z, b.f32("zero_point_factor", factor)], "zero_point_shifted")
            y = b.op("Sub", [y, zs], "sub_zero_point")
        out_scale = b.f32("out_scale", osc.reshape(()) if osc.size == 1 else osc)
        y = b.op("Mul", [y, out_scale], "mul_out_scale")
        tail = f"{'Sub->' if z is not None else ''}Mul(out_scale)"
        if z is None and ob is not None and np.size(ob) == 1 and int(np.max(ob)) <= 8 and osc.size == 1:
            # y = t * out_scale with t integral and within the 8-bit-or-narrower output range: a
            # QuantizeLinear at out_scale recovers t exactly (t * out_scale / out_scale is within an ulp
            # of t) and DequantizeLinear gives back the same float32 product. A layer reading the result
            # then sees a DequantizeLinear, which onnxruntime fuses (MobileNet's classifier: QGemm), and
            # the pair is the plain Q -> DQ form qonnx's QCDQToQuant raises.
            zero = b.const("codes_zero_point", np.zeros((), np.int8 if signed else np.uint8))
            y = b.op("DequantizeLinear", [b.op("QuantizeLinear", [y, out_scale, zero], "codes"), out_scale, zero],
                     "dequantize")
            tail += "->QuantizeLinear->DequantizeLinear"
        if b.min_opset > ctx.opset:
            return Decline(f"emulation needs opset {b.min_opset}")
        mode = nctx.attrs["rounding_mode"]
        return b.rewrite(y, f"emulation: Div->{'Add->' if z is not None else ''}Round->Mul(2^-k)->Clip->{mode}->"
                            f"{tail}", "emulation")


def _check_bits(p: ParamCheck, severity: str) -> None:
    """in_bitwidth and out_bitwidth integers in 1..64, and ``in_bitwidth >= out_bitwidth`` (else ``severity``)."""
    in_bits = p.integer("in_bitwidth", 1, MAX_BITS)
    out_bits = p.integer("out_bitwidth", 1, MAX_BITS)
    if in_bits is None or out_bits is None:
        return
    try:
        bad = in_bits < out_bits
    except ValueError:
        return
    if np.any(bad):
        consequence = (
            "version 1 then multiplies the integers by 2**(out - in)"
            if severity == ERROR
            else "nothing is truncated; the output range is out_bitwidth's"
        )
        p.error(
            f"in_bitwidth must be >= out_bitwidth (truncation drops bits), got in_bitwidth "
            f"{shown(np.broadcast_to(in_bits, bad.shape), bad)} < out_bitwidth "
            f"{shown(np.broadcast_to(out_bits, bad.shape), bad)}: {consequence}",
            severity,
        )


def _lower_scale_zp(b, ctx, nctx, s_v, z_v):
    """(scale, zero-point or None when a constant 0) as float32 operands for the emulation."""
    f32 = np.dtype(np.float32)
    sc, zc = ctx.constant(s_v), ctx.constant(z_v)
    if sc is not None:
        s = b.f32("scale", float_param(sc, f32, nctx, "scale", nonzero=True))
    else:
        s = s_v if s_v.dtype in (None, ir.DataType.FLOAT) else b.op("Cast", [s_v], "scale_f32", to=1)
    if zc is not None:
        zc = float_param(zc, f32, nctx, "zeropt")
        z = b.f32("zero_point", zc) if np.any(zc != 0) else None
    else:
        z = z_v if z_v.dtype in (None, ir.DataType.FLOAT) else b.op("Cast", [z_v], "zero_point_f32", to=1)
    return s, z


def _lower_int_grid(b, x_v, s, z):
    """``Round(X / scale [+ zp])``: the integer the input represents (``_to_int_grid``)."""
    t = b.op("Div", [x_v, s], "div")
    if z is not None:
        t = b.op("Add", [t, z], "add_zero_point")
    return b.op("Round", [t], "to_int_grid")
