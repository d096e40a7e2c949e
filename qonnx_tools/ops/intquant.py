"""IntQuant (formerly ``Quant``): uniform integer quantization with scale and zero-point."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from qonnx_tools import lowering as L
from qonnx_tools._ir import ir
from qonnx_tools.datatypes import DataType
from qonnx_tools.decline import Decline
from qonnx_tools.node_context import NodeContext
from qonnx_tools.ops import register_op
from qonnx_tools.ops._rounding import (
    MAX_BITS,
    emit_int_bounds,
    emit_rounding,
    ROUNDING_MODES,
    all_equal,
    bounds_in_dtype,
    check_broadcast,
    constant,
    float_param,
    int_bounds,
    integer_param,
    normalise_rounding_mode,
    round_values,
    work_dtype,
)
from qonnx_tools.ops._params import ParamCheck, number, shown
from qonnx_tools.ops.base import AttrSpec, InputSpec, ParamProblem, QonnxOp, TensorInfo


@register_op
class IntQuant(QonnxOp):
    """Quantize X to ``bitwidth``-bit integers and return the dequantized values.

    ``q = clamp(rounding_mode(X / scale + zeropt), min_int, max_int)`` and
    ``Y = (q - zeropt) * scale``. Clamping before or after rounding gives the same
    result because the bounds are integers.

    Integer range for b bits:
    signed ``[-2**(b-1), 2**(b-1) - 1]``, with ``narrow`` the minimum is raised by one;
    unsigned ``[0, 2**b - 1]``, with ``narrow`` the maximum is lowered by one (the
    spec's max_int formula applies ``narrow`` to unsigned ranges as well).

    Decisions:

    * ``narrow`` defaults to 0, as the spec says (Brevitas always writes it).
    * 1-bit ranges are accepted as the formulas give them: signed 1-bit is {-1, 0}
      (two's complement, DataType INT1), signed narrow 1-bit and unsigned narrow
      1-bit are {0}. Those quantizers are degenerate but well defined; refusing
      them would reject files that other QONNX tools run. Bipolar {-1, +1}
      quantization is BipolarQuant's job.
    * ``bitwidth`` may be an integer or float tensor (scalar or broadcastable);
      every element must be an integer in 1..64, otherwise InvalidAttributeError.
    * ``scale`` must be finite and nonzero, ``zeropt`` finite; both broadcast to X.
    * Arithmetic is done in X's float dtype (float32 for float32 X), in the same
      order as Brevitas (divide, add zero-point, round, clamp, subtract, multiply),
      so results match Brevitas' float32 outputs bit for bit. Non-float X is
      computed in float32.
    * ``rounding_mode`` is case-insensitive; ``HALF_EVEN`` is accepted as ROUND.
    """

    name = "IntQuant"
    aliases = ("Quant",)
    inputs = (
        InputSpec("X", "tensor to quantize"),
        InputSpec("scale", "scale factor, scalar or broadcastable to X"),
        InputSpec("zeropt", "zero-point, scalar or broadcastable to X"),
        InputSpec("bitwidth", "number of bits, a positive integer (int or float tensor)"),
    )
    attributes = (
        AttrSpec("signed", int, 1, allowed=(0, 1), doc="1: signed integer range"),
        AttrSpec("narrow", int, 0, allowed=(0, 1), doc="1: drop the most negative (signed) / largest (unsigned) value"),
        AttrSpec(
            "rounding_mode",
            str,
            "ROUND",
            allowed=ROUNDING_MODES,
            normalise=normalise_rounding_mode,
            doc="ROUND (half to even), CEIL, FLOOR, UP, DOWN, HALF_UP, HALF_DOWN",
        ),
    )

    @classmethod
    def execute(cls, ctx: NodeContext, *inputs: np.ndarray | None) -> np.ndarray:
        x, scale, zeropt, bitwidth = inputs
        dtype = work_dtype(x)
        x = np.asarray(x).astype(dtype, copy=False)
        scale = float_param(scale, dtype, ctx, "scale", nonzero=True)
        zeropt = float_param(zeropt, dtype, ctx, "zeropt")
        bits = integer_param(bitwidth, ctx, "bitwidth", minimum=1, maximum=MAX_BITS)
        check_broadcast(ctx, x.shape, scale=scale, zeropt=zeropt, bitwidth=bits)
        lo, hi = bounds_in_dtype(*int_bounds(bool(ctx.attrs["signed"]), bool(ctx.attrs["narrow"]), bits), dtype)
        q = np.asarray(x / scale)
        q += zeropt
        q = np.asarray(round_values(q, ctx.attrs["rounding_mode"]))
        np.clip(q, lo, hi, out=q)
        q -= zeropt
        q *= scale
        return q

    @classmethod
    def infer_datatypes(cls, ctx: NodeContext, inputs: Sequence[TensorInfo]) -> list[DataType | None]:
        """INTb/UINTb when scale is 1 and zero-point 0 (constants), SCALEDINT<b> otherwise.

        b is the (largest) constant bit width; unknown bit width gives None. A narrow
        signed range is still annotated INTb (its values are a subset).
        """
        bits_value = constant(inputs[3].value) if len(inputs) > 3 else None
        if bits_value is None:
            return [None]
        bits = int(integer_param(bits_value, ctx, "bitwidth", minimum=1, maximum=MAX_BITS).max())
        if all_equal(inputs[1].value, 1.0) and all_equal(inputs[2].value, 0.0):
            return [DataType.int(bits, signed=bool(ctx.attrs["signed"]))]
        return [DataType.scaled_int(bits)]

    # -- parameter legality -------------------------------------------------------------------
    @classmethod
    def check_params(cls, attrs, params, x_shape) -> list[ParamProblem]:
        """scale finite and > 0; zeropt finite and inside the integer range; bitwidth an integer
        in 1..64, not 1 with ``narrow`` (a single value); all broadcasting to X."""
        p = ParamCheck(params, x_shape)
        signed, narrow = bool(attrs["signed"]), bool(attrs["narrow"])
        p.positive("scale")
        zeropt = p.finite("zeropt")
        bits = p.integer("bitwidth", 1, MAX_BITS)
        if bits is not None and narrow and np.any(bits == 1):
            p.error("bitwidth 1 with narrow=1 leaves a single value (0): the quantizer outputs a constant")
            return p.problems
        if bits is not None and zeropt is not None:
            _zero_point_in_range(p, zeropt, bits, signed, narrow, "bitwidth")
        return p.problems

    # -- lowering to standard ONNX (QCDQ) -----------------------------------------------------
    @classmethod
    def lower_qcdq(cls, node, ctx):
        """Rule of the QONNX -> QCDQ conversion (see qonnx_tools.lowering).

        * Constant X with constant parameters (weights, biases): the integer codes are
          computed now and stored in the smallest container holding the quantizer's range
          (int8/uint8; int4/uint4 and int16/uint16 from opset 21; int32 for wider, e.g.
          32-bit biases) + DequantizeLinear; any rounding mode. With
          ``keep_float_weights`` the float initializer goes through Q -> [Clip] -> DQ
          instead, when that form exists. Parameters Q/DQ cannot lay out (per-element,
          non-integer zero-point) are folded to a float initializer.
        * ROUND with constant parameters, uniform bit width <= 16, positive scale, integer
          zero-point and per-tensor/per-axis/blocked parameters: QuantizeLinear ->
          [Clip] -> DequantizeLinear (see ``emit_int_qdq`` for why a non-zero zero-point is
          added before QuantizeLinear).
        * Everything else: exact emulation in IntQuant.execute's order: Div, [Add zp],
          rounding, clamp, [Sub zp], Mul.
        """
        nctx = ctx.node_context(node, cls)
        x_v, s_v, z_v, b_v = node.inputs
        refused = L.x_float32(x_v)
        if refused is not None:
            return refused
        mode = nctx.attrs["rounding_mode"]
        signed, narrow = bool(nctx.attrs["signed"]), bool(nctx.attrs["narrow"])
        f32 = np.dtype(np.float32)
        xc = ctx.constant(x_v)
        sc = ctx.constant(s_v)
        zc = ctx.constant(z_v)
        bc = ctx.constant(b_v)
        sc = None if sc is None else float_param(sc, f32, nctx, "scale", nonzero=True)
        zc = None if zc is None else float_param(zc, f32, nctx, "zeropt")
        bits = None if bc is None else integer_param(bc, nctx, "bitwidth", minimum=1, maximum=MAX_BITS)
        xshape = L.x_shape(x_v, xc)
        const_params = sc is not None and zc is not None and bits is not None
        qdq_reason = "rounding mode is not ROUND" if mode != "ROUND" else None
        if const_params and xc is not None:
            xc = np.asarray(xc).astype(f32, copy=False)
            check_broadcast(nctx, xc.shape, scale=sc, zeropt=zc, bitwidth=bits)
            if not ctx.keep_float_weights:
                return cls._lower_constant(node, ctx, nctx, xc, sc, zc, bits, bc)
        if const_params and qdq_reason is None:
            out = cls._lower_qdq(node, ctx, x_v, xshape, sc, zc, bits, signed, narrow)
            if isinstance(out, L.Rewrite):
                return out
            qdq_reason = out
        if const_params and xc is not None:  # keep_float_weights without a Q/DQ form
            return cls._lower_constant(node, ctx, nctx, xc, sc, zc, bits, bc)
        return cls._lower_emulated(node, ctx, x_v, xshape, (s_v, sc), (z_v, zc), (b_v, bits), signed, narrow, mode,
                                   qdq_reason)

    # -- raising from standard Q/DQ ---------------------------------------------------------------
    @classmethod
    def raise_qdq(cls, chain: L.QdqChain) -> L.Raised | Decline | None:
        """Rule of the QCDQ -> QONNX conversion: an integer container becomes ``Quant`` (IntQuant's
        name in every QONNX reader) whose bits, ``signed`` and ``narrow`` give the range the stored
        integers can take (the container's, narrowed by Clips), ``rounding_mode`` ROUND (as
        QuantizeLinear rounds) and the zero-point in float32 (0 when omitted)."""
        if chain.int_range is None:
            return None
        lo, hi = chain.int_range
        lo = max(lo, int(np.ceil(chain.clip_lo)) if np.isfinite(chain.clip_lo) else lo)
        hi = min(hi, int(np.floor(chain.clip_hi)) if np.isfinite(chain.clip_hi) else hi)
        fmt = qonnx_int_format(lo, hi)
        if fmt is None:
            return Decline(f"integer range [{lo}, {hi}] is no QONNX Quant range")
        bits, signed, narrow = fmt
        zp = np.zeros((), dtype=np.float32) if chain.zeropt is None else chain.zeropt
        zp32 = np.asarray(zp).astype(np.float32)
        if not np.array_equal(zp32.astype(np.float64), np.asarray(zp).astype(np.float64)):
            return Decline("zero-point is not exact in float32")
        return L.Raised(
            cls, "Quant", {"signed": int(signed), "narrow": int(narrow), "rounding_mode": "ROUND"}, zp32,
            {"bitwidth": np.asarray(bits, dtype=np.float32)},
        )

    @classmethod
    def _lower_qdq(cls, node, ctx, x_v, xshape, sc, zc, bits, signed, narrow):
        """Q -> [Clip] -> DQ for a ROUND quantizer with constant parameters, or a reason why not."""
        if np.unique(bits).size != 1:
            return "bit width varies per element"
        if not np.all(sc > 0):
            return "scale is not positive"
        if not np.all(zc == np.round(zc)):
            return "zero-point is not an integer"
        gran = L.granularity([sc.shape, zc.shape, bits.shape], xshape)
        if isinstance(gran, str):
            return gran
        if gran.min_opset > ctx.opset:
            return f"{gran.describe()} Q/DQ needs opset {gran.min_opset}"
        lo, hi = (int(v.reshape(-1)[0]) for v in int_bounds(signed, narrow, bits))
        choice = L.choose_container(lo, hi, zc, signed=signed, opset=ctx.opset, economical=ctx.economical,
                                    activation=True)
        if choice is None:
            return f"no QuantizeLinear container for the range [{lo}, {hi}] at opset {ctx.opset}"
        b = ctx.builder(node)
        y, pattern = L.emit_int_qdq(b, x_v, gran, sc, zc, choice[0], lo, hi, choice[1])
        if b.min_opset > ctx.opset:
            return f"{pattern} needs opset {b.min_opset}"
        return b.rewrite(y, pattern, "qcdq")

    @classmethod
    def _lower_constant(cls, node, ctx, nctx, xc, sc, zc, bits, bc):
        """Pre-quantized constant + DequantizeLinear, or folded when Q/DQ cannot lay it out."""
        signed, narrow = bool(nctx.attrs["signed"]), bool(nctx.attrs["narrow"])
        b = ctx.builder(node)
        lo_a, hi_a = int_bounds(signed, narrow, bits)
        gran = L.granularity([sc.shape, zc.shape], xc.shape)
        why = None
        if isinstance(gran, str):
            why = gran
        elif gran.min_opset > ctx.opset:
            why = f"{gran.describe()} DequantizeLinear needs opset {gran.min_opset}"
        elif not np.all(zc == np.round(zc)):
            why = "zero-point is not an integer"
        if why is None:
            lo_c, hi_c = bounds_in_dtype(lo_a, hi_a, np.dtype(np.float32))
            codes = _int_codes(xc, sc, zc, lo_c, hi_c, nctx.attrs["rounding_mode"])
            lo, hi = float(np.min(lo_a)), float(np.max(hi_a))
            choice = L.choose_container(lo, hi, zc, signed=signed, opset=ctx.opset, economical=ctx.economical,
                                        activation=False)
            if choice is None and codes.size:  # e.g. 64-bit ranges whose codes fit in int32
                choice = L.choose_container(float(codes.min()), float(codes.max()), zc, signed=signed,
                                            opset=ctx.opset, economical=ctx.economical, activation=False)
            diff = codes.astype(np.float64) - zc.astype(np.float64)  # DequantizeLinear subtracts in int32
            diff_ok = codes.size == 0 or (float(diff.min()) >= -(2**31) and float(diff.max()) <= 2**31 - 1)
            if choice is not None and diff_ok:
                y, pattern = L.emit_dequantized_constant(b, codes, gran, sc, zc, choice[0])
                if b.min_opset <= ctx.opset:
                    return b.rewrite(y, pattern, "dequantized-constant")
                b = ctx.builder(node)
                why = f"{pattern} needs opset {b.min_opset}"
            else:
                why = "no integer container holds the codes"
        y, pattern = L.emit_fold(b, cls.execute(nctx, xc, sc, zc, bc))
        return b.rewrite(y, f"{pattern} ({why})", "folded")

    @classmethod
    def _lower_emulated(cls, node, ctx, x_v, xshape, scale, zeropt, bitwidth, signed, narrow, mode, qdq_reason):
        """Div -> [Add] -> rounding -> clamp -> [Sub] -> Mul in float32, IntQuant.execute's order."""
        b = ctx.builder(node)
        consts = [v for _, v in (scale, zeropt, bitwidth) if v is not None]
        gran = L.granularity([np.shape(v) for v in consts], xshape) if consts else None
        blocked = isinstance(gran, L.Granularity) and gran.kind == "block"
        expand = gran.x_param if blocked else (lambda a: a)

        def operand(pair, hint):
            value, const = pair
            if const is not None:
                return b.f32(hint, expand(const))
            if value.dtype is not None and value.dtype != ir.DataType.FLOAT:
                return b.op("Cast", [value], f"{hint}_f32", to=1)
            return value

        s = operand(scale, "scale")
        t = b.op("Div", [x_v, s], "div")
        zero = zeropt[1] is not None and not np.any(zeropt[1] != 0)
        z = None if zero else operand(zeropt, "zero_point")
        if z is not None:
            t = b.op("Add", [t, z], "add_zero_point")
        r = emit_rounding(b, t, mode)
        if bitwidth[1] is not None:
            lo_c, hi_c = bounds_in_dtype(*int_bounds(signed, narrow, bitwidth[1]), np.dtype(np.float32))
            if np.unique(lo_c).size == 1 and np.unique(hi_c).size == 1:
                lo_c, hi_c = lo_c.reshape(-1)[0], hi_c.reshape(-1)[0]
            else:
                lo_c, hi_c = expand(lo_c), expand(hi_c)
            c = L.emit_clamp(b, r, lo_c, hi_c)
        else:
            lo_v, hi_v = emit_int_bounds(b, bitwidth[0], signed, narrow)
            c = b.op("Min", [b.op("Max", [r, lo_v], "clamp_min"), hi_v], "clamp_max")
        if z is not None:
            c = b.op("Sub", [c, z], "sub_zero_point")
        y = b.op("Mul", [c, s], "mul_scale")
        if b.min_opset > ctx.opset:
            return Decline(f"emulation needs opset {b.min_opset} (target {ctx.opset})")
        why = f" ({qdq_reason})" if qdq_reason else " (non-constant parameters)"
        return b.rewrite(y, f"emulation: Div->{'Add->' if z is not None else ''}{mode}->clamp->"
                            f"{'Sub->' if z is not None else ''}Mul{why}", "emulation")


def _int_codes(x: np.ndarray, scale: np.ndarray, zeropt: np.ndarray, lo: np.ndarray, hi: np.ndarray,
               mode: str) -> np.ndarray:
    """The clamped integer codes ``clamp(round(x / scale + zeropt))`` exactly as IntQuant.execute
    computes them before ``(q - zeropt) * scale`` (float32 arithmetic, same order)."""
    q = np.asarray(x / scale)
    q += zeropt
    q = np.asarray(round_values(q, mode))
    q = np.clip(q, lo, hi)
    return np.asarray(q)


def _zero_point_in_range(p: ParamCheck, zeropt: np.ndarray, bits: np.ndarray, signed: bool, narrow: bool,
                         what: str) -> None:
    try:
        lo, hi = int_bounds(signed, narrow, bits)
        bad = (zeropt < lo) | (zeropt > hi)
    except ValueError:  # shapes that do not broadcast together: reported by the broadcast check
        return
    if np.any(bad):
        kind = "signed" if signed else "unsigned"
        if np.unique(lo).size == 1 and np.unique(hi).size == 1:
            bounds = f"[{number(np.ravel(lo)[0])}, {number(np.ravel(hi)[0])}]"
        else:
            bounds = "of each element's bit width"
        zp = np.broadcast_to(zeropt, np.shape(bad))
        p.error(
            f"zeropt must lie in the {kind}{' narrow' if narrow else ''} integer range {bounds} of {what}, "
            f"got {shown(zp, bad)}"
        )


def _is_pow2(n: int) -> bool:
    return n >= 1 and n & (n - 1) == 0


def qonnx_int_format(lo: int, hi: int) -> tuple[int, bool, bool] | None:
    """(bits, signed, narrow) of the QONNX integer range equal to [lo, hi], or None.

    Unsigned: [0, 2**b - 1], narrow [0, 2**b - 2]. Signed: [-2**(b-1), 2**(b-1) - 1],
    narrow [-2**(b-1) + 1, 2**(b-1) - 1]. Single-value ranges are refused.
    """
    if lo >= hi:
        return None
    if lo == 0:
        if _is_pow2(hi + 1):
            return (hi + 1).bit_length() - 1, False, False
        if _is_pow2(hi + 2):
            return (hi + 2).bit_length() - 1, False, True
        return None
    if lo < 0 and _is_pow2(hi + 1):
        half = hi + 1
        bits = half.bit_length()  # half = 2**(bits-1)
        if lo == -half:
            return bits, True, False
        if lo == -half + 1:
            return bits, True, True
    return None
