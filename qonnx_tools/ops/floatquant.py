"""FloatQuant: quantize to an arbitrary signed minifloat format (sign, exponent, mantissa bits)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import ml_dtypes
import numpy as np

from qonnx_tools import lowering as L
from qonnx_tools._ir import ir
from qonnx_tools.datatypes import DataType
from qonnx_tools.decline import Decline
from qonnx_tools.errors import InvalidAttributeError, InvalidDataTypeError
from qonnx_tools.node_context import NodeContext
from qonnx_tools.ops import register_op
from qonnx_tools.ops._rounding import (
    BASIC_ROUNDING_MODES,
    all_equal,
    bounds_in_dtype,
    check_broadcast,
    constant,
    emit_rounding,
    float_param,
    integer_param,
    normalise_rounding_mode,
    round_values,
    work_dtype,
)
from qonnx_tools.ops._params import ParamCheck, shown
from qonnx_tools.ops.base import AttrSpec, InputSpec, ParamProblem, QonnxOp, TensorInfo

#: exponent widths beyond this overflow every float format used for computation
_MAX_EXPONENT_BITS = 11
_MAX_MANTISSA_BITS = 52


@dataclass(frozen=True)
class FloatFormat:
    """A minifloat container as FloatQuant describes it."""

    exponent_bits: int
    mantissa_bits: int
    exponent_bias: int
    max_val: float
    has_inf: bool
    has_nan: bool


#: float containers of QuantizeLinear/DequantizeLinear -> FloatQuant parameters
FLOAT_FORMATS: dict[np.dtype, FloatFormat] = {
    np.dtype(ml_dtypes.float8_e4m3fn): FloatFormat(4, 3, 7, 448.0, False, True),
    np.dtype(ml_dtypes.float8_e4m3fnuz): FloatFormat(4, 3, 8, 240.0, False, True),
    np.dtype(ml_dtypes.float8_e5m2): FloatFormat(5, 2, 15, 57344.0, True, True),
    np.dtype(ml_dtypes.float8_e5m2fnuz): FloatFormat(5, 2, 16, 57344.0, False, True),
    np.dtype(ml_dtypes.float4_e2m1fn): FloatFormat(2, 1, 1, 6.0, False, False),
}


def format_max(e: np.ndarray, m: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """Largest magnitude of FLOAT<e,m,bias> with every code used for numbers (float64).

    All exponent bits set, all mantissa bits set: ``(2 - 2**-m) * 2**(2**e - 1 - bias)``.
    """
    top = (np.left_shift(1, e.astype(np.int64)) - 1 - bias).astype(np.int32)
    significand = 2.0 - np.ldexp(1.0, (-m).astype(np.int32))
    with np.errstate(over="ignore"):
        return np.ldexp(significand, top)


@register_op
class FloatQuant(QonnxOp):
    """Round X / scale to the nearest value of a signed minifloat, clamp, and rescale.

    For ``xs = X / scale``: ``E = floor(log2|xs|)`` (exactly, from the binary
    exponent), raised to at least ``1 - exponent_bias`` (the subnormal range shares
    the smallest normal exponent); the quantization step there is ``2**(E - m)``,
    so ``q = rounding_mode(xs / 2**(E - m)) * 2**(E - m)``. ``q`` is clamped to
    ``±M`` with ``M = min(max_val, (2 - 2**-m) * 2**(2**e - 1 - bias))`` and
    ``Y = q * scale``. Power-of-two scalings are done with ldexp and are exact;
    arithmetic is in X's float dtype (float32 for non-float X).

    Parameters may be scalars or broadcast to X. ``exponent_bitwidth`` must be an
    integer in 1..11, ``mantissa_bitwidth`` in 0..52 and ``exponent_bias`` an
    integer (any sign); ``scale`` finite and nonzero. ``max_val`` may be omitted
    (then ``M`` is the format's own maximum).

    Attributes: ``has_infinity`` (Brevitas writes ``has_inf``; both are read),
    ``has_nan`` and ``has_subnormal`` describe the format for backends.
    ``has_subnormal`` does not change execution (the spec defines the computation
    with subnormals). ``saturation`` does:

    * ``saturation=1`` (default): values beyond ``±M`` (including ±inf inputs) clamp to ``±M``.
    * ``saturation=0``: values that round beyond ``±M`` become ``±inf`` when
      ``has_infinity=1``, otherwise ``NaN`` when ``has_nan=1`` (±inf inputs become
      NaN too). A non-saturating format with neither infinity nor NaN cannot
      encode an overflow at all; such a node is refused with InvalidAttributeError
      (as the reference implementation does).

    NaN inputs stay NaN. ``rounding_mode`` is ROUND (half to even), CEIL or FLOOR.
    """

    name = "FloatQuant"
    inputs = (
        InputSpec("X", "tensor to quantize"),
        InputSpec("scale", "scale factor, scalar or broadcastable to X"),
        InputSpec("exponent_bitwidth", "exponent bits e"),
        InputSpec("mantissa_bitwidth", "mantissa bits m"),
        InputSpec("exponent_bias", "exponent bias"),
        InputSpec("max_val", "largest representable magnitude", optional=True),
    )
    attributes = (
        AttrSpec("has_infinity", int, 0, allowed=(0, 1), doc="the format encodes ±inf"),
        AttrSpec("has_nan", int, 0, allowed=(0, 1), doc="the format encodes NaN"),
        AttrSpec("has_subnormal", int, 1, allowed=(0, 1), doc="the format has subnormals (informative)"),
        AttrSpec("saturation", int, 1, allowed=(0, 1), doc="1: clamp overflow to ±max_val"),
        AttrSpec(
            "rounding_mode",
            str,
            "ROUND",
            allowed=BASIC_ROUNDING_MODES,
            normalise=normalise_rounding_mode,
            doc="ROUND (half to even), CEIL or FLOOR; case-insensitive",
        ),
    )

    @classmethod
    def resolve_attributes(cls, raw: Mapping[str, Any], where: str) -> dict[str, Any]:
        """As the base class, plus: ``has_inf`` is read as ``has_infinity``, and a
        non-saturating format without infinity or NaN is refused."""
        raw = dict(raw)
        if "has_inf" in raw and "has_infinity" not in raw:
            raw["has_infinity"] = raw["has_inf"]
        attrs = super().resolve_attributes(raw, where)
        if not attrs["saturation"] and not (attrs["has_infinity"] or attrs["has_nan"]):
            raise InvalidAttributeError(
                f"{where}: saturation=0 needs has_infinity=1 or has_nan=1 to represent overflow"
            )
        return attrs

    @classmethod
    def _format(cls, ctx: NodeContext, e: Any, m: Any, bias: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        e_arr = integer_param(e, ctx, "exponent_bitwidth", minimum=1, maximum=_MAX_EXPONENT_BITS)
        m_arr = integer_param(m, ctx, "mantissa_bitwidth", minimum=0, maximum=_MAX_MANTISSA_BITS)
        b_arr = integer_param(bias, ctx, "exponent_bias", minimum=-(2**20), maximum=2**20)
        return e_arr, m_arr, b_arr

    @classmethod
    def execute(cls, ctx: NodeContext, *inputs: np.ndarray | None) -> np.ndarray:
        x, scale, e, m, bias = inputs[:5]
        max_val = inputs[5] if len(inputs) > 5 else None
        dtype = work_dtype(x)
        x = np.asarray(x).astype(dtype, copy=False)
        scale = float_param(scale, dtype, ctx, "scale", nonzero=True)
        e, m, bias = cls._format(ctx, e, m, bias)
        limit = format_max(e, m, bias)
        if max_val is not None:
            limit = np.minimum(limit, np.asarray(max_val, dtype=np.float64))
        check_broadcast(ctx, x.shape, scale=scale, exponent_bitwidth=e, mantissa_bitwidth=m,
                        exponent_bias=bias, max_val=limit)
        _, hi = bounds_in_dtype(-limit, limit, dtype)

        xs = np.asarray(x / scale)
        _, binary_exp = np.frexp(xs)  # xs = f * 2**binary_exp, 0.5 <= |f| < 1
        step_exp = (np.maximum(binary_exp - 1, 1 - bias) - m).astype(np.int32)
        q = np.asarray(np.ldexp(round_values(np.ldexp(xs, -step_exp), ctx.attrs["rounding_mode"]), step_exp),
                       dtype=dtype)
        del xs, binary_exp, step_exp

        if ctx.attrs["saturation"]:
            np.clip(q, -hi, hi, out=q)
        else:
            over = q > hi
            under = q < -hi
            if ctx.attrs["has_infinity"]:
                q[over] = np.inf
                q[under] = -np.inf
            else:
                q[over | under] = np.nan
        q *= scale
        return q

    @classmethod
    def infer_datatypes(cls, ctx: NodeContext, inputs: Sequence[TensorInfo]) -> list[DataType | None]:
        """FLOAT<e,m,bias> when scale is a constant 1 and e, m, bias are constant and uniform.

        None otherwise, and None for non-saturating nodes (their outputs may be ±inf/NaN,
        which no DataType admits).
        """
        values = [constant(info.value) for info in inputs[2:5]]
        if len(values) < 3 or any(v is None for v in values) or not ctx.attrs["saturation"]:
            return [None]
        if not all_equal(inputs[1].value, 1.0):
            return [None]
        e, m, bias = cls._format(ctx, *values)
        if any(np.unique(a).size != 1 for a in (e, m, bias)):
            return [None]
        try:
            return [DataType.minifloat(int(e.flat[0]), int(m.flat[0]), int(bias.flat[0]))]
        except InvalidDataTypeError:
            return [None]

    # -- parameter legality -------------------------------------------------------------------
    @classmethod
    def check_params(cls, attrs, params, x_shape) -> list[ParamProblem]:
        """scale finite and > 0; exponent/mantissa bit widths positive integers (<= 11 / 52);
        exponent_bias an integer; max_val > 0; all broadcasting to X."""
        p = ParamCheck(params, x_shape)
        p.positive("scale")
        p.integer("exponent_bitwidth", 1, _MAX_EXPONENT_BITS, " (a positive integer)")
        p.integer("mantissa_bitwidth", 1, _MAX_MANTISSA_BITS, " (a positive integer)")
        p.integer("exponent_bias", -(2**20), 2**20)
        arr = p.value("max_val")
        if arr is not None:
            values = arr.astype(np.float64)
            bad = np.isnan(values) | (values <= 0)
            if bad.any():
                p.error(f"max_val must be > 0, got {shown(arr, bad)}")
            else:
                p.broadcasts("max_val", arr)
        return p.problems

    # -- lowering to standard ONNX (QCDQ) -----------------------------------------------------
    @classmethod
    def lower_qcdq(cls, node, ctx):
        """Rule of the QONNX -> QCDQ conversion (see qonnx_tools.lowering).

        * OCP FP8 formats (opset >= 19): e=4, m=3, bias=7 with max 448 is FLOAT8E4M3FN,
          e=5, m=2, bias=15 with max 57344 is FLOAT8E5M2. With ROUND and a positive
          per-tensor/per-axis scale: QuantizeLinear(float8, saturate) -> DequantizeLinear.
          Only ``saturation=1`` (``saturate=1``): non-saturating nodes are emulated, as
          onnxruntime's ``saturate=0`` conversion maps +inf to 448 (E4M3FN) and values
          that round up to 65536 to NaN instead of inf (E5M2).
        * Constant X: the quantized values are computed now; when they are exactly
          float8 values (always for those formats, often for smaller ones), a float8
          initializer + DequantizeLinear(scale) (4x smaller), else a folded float initializer.
        * Otherwise an exact float32 emulation without Log: the exponent of ``|X / scale|``
          comes from comparisons with a table of powers of two (ReduceSum of
          GreaterOrEqual over the table, then Gather of the quantization step), then
          ``rounding(xs / step) * step``, clamp (or +-inf/NaN when not saturating), ``* scale``.
        """
        nctx = ctx.node_context(node, cls)
        x_v, s_v, e_v, m_v, b_v = node.inputs[:5]
        mx_v = node.inputs[5] if len(node.inputs) > 5 else None
        refused = L.x_float32(x_v)
        if refused is not None:
            return refused
        f32 = np.dtype(np.float32)
        ec, mc, bc = (ctx.constant(v) for v in (e_v, m_v, b_v))
        if ec is None or mc is None or bc is None:
            return Decline("exponent/mantissa bit widths and exponent bias must be constant")
        e, m, bias = cls._format(nctx, ec, mc, bc)
        limit = format_max(e, m, bias)
        if mx_v is not None:
            mxc = ctx.constant(mx_v)
            if mxc is None:
                return Decline("max_val must be constant")
            limit = np.minimum(limit, np.asarray(mxc, dtype=np.float64))
        xc = ctx.constant(x_v)
        sc = ctx.constant(s_v)
        sc = None if sc is None else float_param(sc, f32, nctx, "scale", nonzero=True)
        attrs = nctx.attrs
        fmt = _onnx_float8(e, m, bias, limit)
        xshape = L.x_shape(x_v, xc)
        if xc is not None and sc is not None:
            xc = np.asarray(xc).astype(f32, copy=False)
            check_broadcast(nctx, xc.shape, scale=sc, exponent_bitwidth=e, mantissa_bitwidth=m,
                            exponent_bias=bias, max_val=limit)
            if not (ctx.keep_float_weights and fmt is not None and attrs["rounding_mode"] == "ROUND"):
                return cls._lower_constant(node, ctx, nctx, xc, sc, e, m, bias, limit, fmt)
        qdq_reason = None
        if fmt is None:
            qdq_reason = "format is not an ONNX float8 type"
        elif attrs["rounding_mode"] != "ROUND":
            qdq_reason = "rounding mode is not ROUND"
        elif sc is None or not np.all(sc > 0):
            qdq_reason = "scale is not a positive constant"
        elif ctx.opset < 19:
            qdq_reason = "float8 QuantizeLinear needs opset 19"
        elif not attrs["saturation"]:
            # ONNX's saturate=0 overflow values would match (E4M3FN NaN, E5M2 inf), but onnxruntime
            # (1.32) turns +inf into 448 (E4M3FN) and values rounding to 65536 into NaN (E5M2)
            qdq_reason = "non-saturating float8 QuantizeLinear is not exact in onnxruntime"
        if qdq_reason is None:
            gran = L.granularity([sc.shape], xshape)
            if isinstance(gran, str):
                qdq_reason = gran
            elif gran.min_opset > ctx.opset:
                qdq_reason = f"{gran.describe()} needs opset {gran.min_opset}"
            else:
                b = ctx.builder(node)
                b.require(19, fmt.name)
                b.require(gran.min_opset)
                s_q = b.f32("scale", gran.qdq_param(sc))
                z_q = b.const("zero_point", np.zeros(np.shape(gran.qdq_param(sc))), fmt.dtype)
                q = b.op("QuantizeLinear", [x_v, s_q, z_q], "quant", saturate=int(attrs["saturation"]), **gran.attrs())
                y = b.op("DequantizeLinear", [q, s_q, z_q], "dequant", **gran.attrs())
                return b.rewrite(y, f"QuantizeLinear({fmt.name}, saturate={int(attrs['saturation'])})->"
                                    f"DequantizeLinear, {gran.describe()}", "qcdq")
        if xc is not None and sc is not None:
            return cls._lower_constant(node, ctx, nctx, xc, sc, e, m, bias, limit, fmt)
        return cls._lower_emulated(node, ctx, nctx, x_v, s_v, sc, e, m, bias, limit, qdq_reason)

    # -- raising from standard Q/DQ ---------------------------------------------------------------
    @classmethod
    def raise_qdq(cls, chain: L.QdqChain) -> L.Raised | Decline | None:
        """Rule of the QCDQ -> QONNX conversion: a float8/float4 container (FLOAT_FORMATS) becomes
        FloatQuant with the format's exponent and mantissa widths, bias and largest finite value,
        ``has_inf``/``has_nan`` of the format, ``has_subnormal=1``, ``saturation`` from QuantizeLinear's
        ``saturate`` (always 1 for formats without inf/NaN, as ONNX casts those), rounding ROUND."""
        fmt = FLOAT_FORMATS.get(chain.container)
        if fmt is None:
            return None
        if chain.n_clips:
            return Decline("Clip on a float8/float4 container has no FloatQuant form")
        if chain.zeropt is not None and np.any(chain.zeropt.astype(np.float32) != 0):
            return Decline("non-zero float8 zero-point has no FloatQuant form")
        saturate = True if chain.saturate is None else chain.saturate
        if not (fmt.has_inf or fmt.has_nan):
            saturate = True  # ONNX clamps formats without inf/NaN whatever `saturate` says
        f32 = np.float32
        return L.Raised(
            cls, "FloatQuant",
            {
                "has_inf": int(fmt.has_inf), "has_nan": int(fmt.has_nan), "has_subnormal": 1,
                "saturation": int(saturate), "rounding_mode": "ROUND",
            },
            None,
            {
                "exponent_bitwidth": np.asarray(fmt.exponent_bits, dtype=f32),
                "mantissa_bitwidth": np.asarray(fmt.mantissa_bits, dtype=f32),
                "exponent_bias": np.asarray(fmt.exponent_bias, dtype=f32),
                "max_val": np.asarray(fmt.max_val, dtype=f32),
            },
        )

    @classmethod
    def _lower_constant(cls, node, ctx, nctx, xc, sc, e, m, bias, limit, fmt):
        b = ctx.builder(node)
        gran = L.granularity([sc.shape], xc.shape)
        why = gran if isinstance(gran, str) else None
        if why is None and max(gran.min_opset, 19) > ctx.opset:
            why = f"float8 DequantizeLinear needs opset {max(gran.min_opset, 19)}"
        if why is None:
            codes = _float_codes(xc, sc, e, m, bias, limit, nctx.attrs)
            candidates = [fmt] if fmt is not None else []
            candidates += [c for c in (L.FLOAT8E4M3FN, L.FLOAT8E5M2) if c is not fmt]
            for container in candidates:
                if L.same_value(codes.astype(container.dtype).astype(np.float32), codes):
                    y, pattern = L.emit_dequantized_constant(b, codes, gran, sc, None, container)
                    return b.rewrite(y, pattern, "dequantized-constant")
            why = "the quantized values are no float8 values"
        y, pattern = L.emit_fold(b, cls.execute(nctx, xc, sc, e, m, bias, limit))
        return b.rewrite(y, f"{pattern} ({why})", "folded")

    @classmethod
    def _lower_emulated(cls, node, ctx, nctx, x_v, s_v, sc, e, m, bias, limit, qdq_reason):
        if any(np.unique(a).size != 1 for a in (e, m, bias)):
            return Decline("emulation needs one exponent/mantissa/bias for the whole tensor")
        e0, m0, b0 = int(e.reshape(-1)[0]), int(m.reshape(-1)[0]), int(bias.reshape(-1)[0])
        first, last = 2 - b0, (1 << e0) - b0  # thresholds 2**first .. 2**last
        step_lo, step_hi = 1 - b0 - m0, 1 - b0 - m0 + (last - first + 1)
        if first < -149 or last > 127 or step_lo < -149 or step_hi > 127 or last - first > 254:
            return Decline(f"format e={e0} m={m0} bias={b0} exceeds the float32 exponent range of the emulation")
        f32 = np.dtype(np.float32)
        _, hi = bounds_in_dtype(-limit, limit, f32)
        attrs = nctx.attrs
        b = ctx.builder(node)
        if sc is not None:
            s = b.f32("scale", sc)
        else:
            s = s_v if s_v.dtype in (None, ir.DataType.FLOAT) else b.op("Cast", [s_v], "scale_f32", to=1)
        xs = b.op("Div", [x_v, s], "div")
        mag = b.op("Abs", [xs], "abs")
        wide = b.op("Unsqueeze", [mag, b.const("axes", np.array([-1], dtype=np.int64))], "unsqueeze")
        table = L.pow2(np.arange(first, last + 1))
        reached = b.op("Cast", [b.op("GreaterOrEqual", [wide, b.f32("binades", table)], "reached")],
                       "reached_f", to=1)
        count = b.op("ReduceSum", [reached, b.const("sum_axes", np.array([-1], dtype=np.int64))], "binade",
                     keepdims=0)
        index = b.op("Cast", [count], "binade_index", to=7)  # INT64
        steps = L.pow2(np.arange(step_lo, step_hi + 1))
        step = b.op("Gather", [b.f32("steps", steps), index], "step")
        q = emit_rounding(b, b.op("Div", [xs, step], "in_steps"), attrs["rounding_mode"])
        q = b.op("Mul", [q, step], "on_grid")
        if attrs["saturation"]:
            q = L.emit_clamp(b, q, -hi, hi, "saturate")
        else:
            hi_v = b.f32("max", hi)
            over = b.op("Greater", [q, hi_v], "over")
            under = b.op("Less", [q, b.f32("min", -hi)], "under")
            if attrs["has_infinity"]:
                q = b.op("Where", [over, b.f32("inf", np.inf), q], "overflow")
                q = b.op("Where", [under, b.f32("neg_inf", -np.inf), q], "underflow")
            else:
                q = b.op("Where", [b.op("Or", [over, under], "out_of_range"), b.f32("nan", np.nan), q], "overflow")
        y = b.op("Mul", [q, s], "mul_scale")
        if b.min_opset > ctx.opset:
            return Decline(f"emulation needs opset {b.min_opset}")
        why = f" ({qdq_reason})" if qdq_reason else ""
        return b.rewrite(y, f"emulation: exponent table ({last - first + 1} binades)->{attrs['rounding_mode']}->"
                            f"{'clamp' if attrs['saturation'] else 'overflow'}->Mul{why}", "emulation")


def _onnx_float8(e: np.ndarray, m: np.ndarray, bias: np.ndarray, limit: np.ndarray):
    """The ONNX float8 container whose values and range are exactly this format's, or None."""
    if any(np.unique(a).size != 1 for a in (e, m, bias, limit)):
        return None
    first = [np.asarray(a).reshape(-1)[0] for a in (e, m, bias, limit)]
    key = (int(first[0]), int(first[1]), int(first[2]), float(first[3]))
    return {(4, 3, 7, 448.0): L.FLOAT8E4M3FN, (5, 2, 15, 57344.0): L.FLOAT8E5M2}.get(key)


def _float_codes(x: np.ndarray, scale: np.ndarray, e: np.ndarray, m: np.ndarray, bias: np.ndarray,
                 limit: np.ndarray, attrs) -> np.ndarray:
    """FloatQuant.execute's values before the final ``* scale`` (same float32 arithmetic)."""
    dtype = np.dtype(np.float32)
    _, hi = bounds_in_dtype(-limit, limit, dtype)
    xs = np.asarray(x / scale)
    _, binary_exp = np.frexp(xs)
    step_exp = (np.maximum(binary_exp - 1, 1 - bias) - m).astype(np.int32)
    q = np.asarray(np.ldexp(round_values(np.ldexp(xs, -step_exp), attrs["rounding_mode"]), step_exp), dtype=dtype)
    if attrs["saturation"]:
        np.clip(q, -hi, hi, out=q)
    else:
        over = q > hi
        under = q < -hi
        if attrs["has_infinity"]:
            q[over] = np.inf
            q[under] = -np.inf
        else:
            q[over | under] = np.nan
    return q
