"""MultiThreshold (FINN): count how many per-channel thresholds each element reaches."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from qonnx_tools import lowering as L
from qonnx_tools._ir import ir
from qonnx_tools.datatypes import BIPOLAR, DataType, smallest_int_type
from qonnx_tools.decline import Decline
from qonnx_tools.errors import InvalidAttributeError, InvalidDataTypeError
from qonnx_tools.node_context import NodeContext
from qonnx_tools.ops import register_op
from qonnx_tools.ops._params import WARNING, ParamCheck
from qonnx_tools.ops._rounding import where as node_where
from qonnx_tools.ops.base import AttrSpec, InputSpec, ParamProblem, QonnxOp, TensorInfo, upper_str

#: With at most this many thresholds per channel, compare once per threshold
#: (T passes over X); with more, binary-search each channel's sorted thresholds.
_COMPARE_LIMIT = 8


def channel_axis(layout: str, ndim: int) -> int:
    """The channel axis of an ``ndim``-D tensor in ``layout``.

    2-D tensors are (N, C): axis 1. Otherwise layouts ending in C (NHWC, NWC, ...)
    put channels last, and the others (NCHW, NCW, ...) at the position of 'C' (axis 1).
    """
    if ndim == 2:
        return 1
    if layout.endswith("C"):
        return ndim - 1
    axis = layout.index("C")
    if axis >= ndim:
        raise ValueError(f"layout {layout} has no channel axis for a {ndim}-D tensor")
    return axis


def count_reached(x: np.ndarray, thresholds: np.ndarray, axis: int | None) -> np.ndarray:
    """For each element, how many of its channel's thresholds t satisfy ``x >= t`` (an int array).

    ``thresholds`` is (C, T); ``axis`` is X's channel axis, or None when C == 1 (shared).
    Never materialises an elements-by-thresholds array: few thresholds are compared
    one at a time; many are binary-searched (per channel) in the sorted row.
    NaN elements reach no threshold and NaN thresholds are never reached.
    """
    n_thresh = thresholds.shape[1]
    counts = np.zeros(x.shape, dtype=np.int32 if n_thresh < 2**31 else np.int64)
    if n_thresh == 0 or x.size == 0:
        return counts
    if n_thresh <= _COMPARE_LIMIT:
        for j in range(n_thresh):
            column = thresholds[:, j]
            if axis is not None:
                column = column.reshape([-1 if a == axis else 1 for a in range(x.ndim)])
            else:
                column = column[0]
            counts += x >= column
        return counts
    rows = np.sort(thresholds, axis=1)  # NaN thresholds sort last and are never counted below
    if axis is None:
        counts[...] = np.searchsorted(rows[0], x, side="right")
    else:
        index: list[Any] = [slice(None)] * x.ndim
        for c in range(rows.shape[0]):
            index[axis] = c
            counts[tuple(index)] = np.searchsorted(rows[c], x[tuple(index)], side="right")
    if x.dtype.kind == "f":
        nan = np.isnan(x)
        if nan.any():
            counts[nan] = 0
    return counts


@register_op
class MultiThreshold(QonnxOp):
    """``Y = out_scale * #{t in thresholds[c] : X >= t} + out_bias`` (FINN's MultiThreshold).

    ``thresholds`` has shape (C, T) with one row per channel of X, or (1, T) shared by
    every channel (a 1-D (T,) tensor is read as (1, T)). The rows need not be sorted
    (the count does not depend on order); ±inf thresholds work as expected (-inf is
    always reached, +inf only by +inf). NaN elements reach no threshold.

    ``data_layout`` names X's axes (NCHW, NHWC, NC, NCW, NWC, ...; case-insensitive);
    it only locates the channel axis: axis 1 for 2-D input and for layouts with C
    second, the last axis for layouts ending in C.

    ``out_dtype`` is, as in FINN, the datatype of the final output Y (after
    ``out_scale`` and ``out_bias``): e.g. INT4 with out_bias -8, or BIPOLAR with
    out_scale 2 and out_bias -1. It does not change execution. Y is float32,
    computed in float32.
    """

    name = "MultiThreshold"
    inputs = (
        InputSpec("X", "tensor to threshold"),
        InputSpec("thresholds", "(C, T) or (1, T) thresholds"),
    )
    attributes = (
        AttrSpec("out_dtype", str, "", doc="datatype of Y (after scale and bias); '' if unspecified"),
        AttrSpec("out_scale", float, 1.0, doc="multiplies the count"),
        AttrSpec("out_bias", float, 0.0, doc="added after scaling"),
        AttrSpec("data_layout", str, "NCHW", normalise=upper_str, doc="axis names of X; locates C"),
    )

    @classmethod
    def resolve_attributes(cls, raw: Mapping[str, Any], where: str) -> dict[str, Any]:
        """As the base class, plus: data_layout must name exactly one C axis and out_dtype must parse."""
        attrs = super().resolve_attributes(raw, where)
        layout = attrs["data_layout"]
        if not layout.isalpha() or layout.count("C") != 1:
            raise InvalidAttributeError(
                f"{where}: attribute 'data_layout'={layout!r} must be axis letters with one C (e.g. NCHW, NHWC)"
            )
        if attrs["out_dtype"]:
            try:
                DataType.parse(attrs["out_dtype"])
            except InvalidDataTypeError as err:
                raise InvalidAttributeError(f"{where}: attribute 'out_dtype': {err}") from None
        attrs["out_scale"] = float(attrs["out_scale"])
        attrs["out_bias"] = float(attrs["out_bias"])
        return attrs

    @classmethod
    def execute(cls, ctx: NodeContext, *inputs: np.ndarray | None) -> np.ndarray:
        x, thresholds = (np.asarray(a) for a in inputs)
        if thresholds.ndim == 1:
            thresholds = thresholds.reshape(1, -1)
        if thresholds.ndim != 2 or x.dtype.kind not in "iuf" or thresholds.dtype.kind not in "iuf":
            raise InvalidAttributeError(
                f"{node_where(ctx)}: needs numeric X and (C, T) thresholds, got X {x.dtype} and thresholds "
                f"{thresholds.dtype} of shape {thresholds.shape}"
            )
        common = np.result_type(x.dtype, thresholds.dtype)
        x = x.astype(common, copy=False)
        thresholds = thresholds.astype(common, copy=False)
        axis = None
        if thresholds.shape[0] != 1:
            if x.ndim < 2:
                raise InvalidAttributeError(
                    f"{node_where(ctx)}: per-channel thresholds {thresholds.shape} need X with a channel axis, X is {x.shape}"
                )
            try:
                axis = channel_axis(ctx.attrs["data_layout"], x.ndim)
            except ValueError as err:
                raise InvalidAttributeError(f"{node_where(ctx)}: {err}") from None
            if x.shape[axis] != thresholds.shape[0]:
                raise InvalidAttributeError(
                    f"{node_where(ctx)}: thresholds have {thresholds.shape[0]} rows but X {x.shape} has "
                    f"{x.shape[axis]} channels on axis {axis} (data_layout {ctx.attrs['data_layout']})"
                )
        y = count_reached(x, thresholds, axis).astype(np.float32)
        if ctx.attrs["out_scale"] != 1.0:
            y *= np.float32(ctx.attrs["out_scale"])
        if ctx.attrs["out_bias"] != 0.0:
            y += np.float32(ctx.attrs["out_bias"])
        return y

    @classmethod
    def infer_types(cls, ctx: NodeContext, inputs: Sequence[TensorInfo]) -> list[TensorInfo]:
        """Same shape as X, float32."""
        return [TensorInfo(dtype=ir.DataType.FLOAT, shape=inputs[0].shape if inputs else None)]

    @classmethod
    def infer_datatypes(cls, ctx: NodeContext, inputs: Sequence[TensorInfo]) -> list[DataType | None]:
        """The datatype of Y.

        With T thresholds per channel (known from the thresholds' shape) Y takes the
        values ``out_scale * k + out_bias`` for k = 0..T. ``out_dtype`` is returned when
        it is set and admits all of them (or T is unknown). Otherwise the type is
        derived: BIPOLAR for {-1, +1}, the smallest INTn/UINTn for integer values,
        None when the values are not integers.
        """
        scale, bias = ctx.attrs["out_scale"], ctx.attrs["out_bias"]
        declared = DataType.parse(ctx.attrs["out_dtype"]) if ctx.attrs["out_dtype"] else None
        n_thresh = _threshold_count(inputs[1] if len(inputs) > 1 else TensorInfo())
        if n_thresh is None:
            return [declared]
        values = scale * np.arange(n_thresh + 1, dtype=np.float64) + bias
        if declared is not None and bool(np.all(declared.allowed(values))):
            return [declared]
        if n_thresh >= 1 and bool(np.all(BIPOLAR.allowed(values))):
            return [BIPOLAR]
        if np.all(values == np.round(values)) and np.all(np.isfinite(values)):
            try:
                return [smallest_int_type(float(values.min()), float(values.max()))]
            except InvalidDataTypeError:
                return [None]
        return [None]

    # -- parameter legality -------------------------------------------------------------------
    @classmethod
    def check_params(cls, attrs, params, x_shape) -> list[ParamProblem]:
        """thresholds (C, T) or (1, T), without NaN (a warning: never reached), with C matching
        X's channels on the axis ``data_layout`` names."""
        p = ParamCheck(params, x_shape)
        arr = p.value("thresholds")
        if arr is None:
            return p.problems
        if arr.ndim == 1:
            arr = arr.reshape(1, -1)
        if arr.ndim != 2:
            p.error(f"thresholds must be (C, T) or (1, T), got shape {arr.shape}")
            return p.problems
        if arr.dtype.kind == "f" and np.isnan(arr).any():
            p.error("thresholds contain NaN (never reached)", WARNING)
        x_shape = p.x_shape
        if x_shape is None or arr.shape[0] == 1:
            return p.problems
        if len(x_shape) < 2:
            p.error(f"per-channel thresholds {arr.shape} need X with a channel axis, X has shape {x_shape}")
            return p.problems
        try:
            axis = channel_axis(attrs["data_layout"], len(x_shape))
        except ValueError as exc:
            p.error(str(exc))
            return p.problems
        channels = x_shape[axis]
        if isinstance(channels, int) and channels != arr.shape[0]:
            p.error(
                f"thresholds have {arr.shape[0]} rows but X has {channels} channels on axis {axis} "
                f"(data_layout {attrs['data_layout']})"
            )
        return p.problems

    # -- lowering to standard ONNX (QCDQ) -----------------------------------------------------
    @classmethod
    def lower_qcdq(cls, node, ctx):
        """Rule of the QONNX -> QCDQ conversion (see qonnx_tools.lowering).

        ``out_scale * #{t : x >= t} + out_bias`` with standard ops.

        ``Unsqueeze(x, -1) >= thresholds`` (thresholds moved to X's layout with the
        threshold index last) -> Cast to float -> ReduceSum over the last axis: an exact
        count (small integers in float32), then Mul/Add as MultiThreshold.execute does.
        NaN elements reach no threshold, as in the executor. Needs constant float32
        thresholds and float32 X.
        """
        nctx = ctx.node_context(node, cls)
        x_v, t_v = node.inputs[0], node.inputs[1]
        refused = L.x_float32(x_v)
        if refused is not None:
            return refused
        thresholds = ctx.constant(t_v)
        if thresholds is None:
            return Decline("thresholds are not constant")
        thresholds = np.asarray(thresholds)
        if thresholds.dtype != np.float32:
            if thresholds.dtype.kind not in "iuf" or not np.array_equal(thresholds.astype(np.float32), thresholds):
                return Decline(f"thresholds of dtype {thresholds.dtype} are not exactly float32")
        thresholds = thresholds.astype(np.float32)
        if thresholds.ndim == 1:
            thresholds = thresholds.reshape(1, -1)
        if thresholds.ndim != 2:
            return Decline(f"thresholds must be (C, T), got {thresholds.shape}")
        xshape = L.x_shape(x_v)
        if thresholds.shape[0] == 1:
            table = thresholds[0]
        else:
            if xshape is None:
                return Decline("per-channel thresholds need X's rank")
            axis = channel_axis(nctx.attrs["data_layout"], len(xshape))
            if xshape[axis] not in (None, thresholds.shape[0]):
                return Decline(f"thresholds have {thresholds.shape[0]} rows, X {xshape} axis {axis}")
            shape = [1] * len(xshape) + [thresholds.shape[1]]
            shape[axis] = thresholds.shape[0]
            table = thresholds.reshape(shape)
        b = ctx.builder(node)
        ex = b.op("Unsqueeze", [x_v, b.const("axes", np.array([-1], dtype=np.int64))], "unsqueeze")
        reached = b.op("Cast", [b.op("GreaterOrEqual", [ex, b.f32("thresholds", table)], "reached")], "reached_f", to=1)
        y = b.op("ReduceSum", [reached, b.const("sum_axes", np.array([-1], dtype=np.int64))], "count", keepdims=0)
        if nctx.attrs["out_scale"] != 1.0:
            y = b.op("Mul", [y, b.f32("out_scale", nctx.attrs["out_scale"])], "mul_out_scale")
        if nctx.attrs["out_bias"] != 0.0:
            y = b.op("Add", [y, b.f32("out_bias", nctx.attrs["out_bias"])], "add_out_bias")
        return b.rewrite(y, "emulation: ReduceSum(GreaterOrEqual(x, thresholds))*scale+bias", "emulation")


def _threshold_count(info: TensorInfo) -> int | None:
    """Thresholds per channel, from the constant value or the static shape."""
    if info.value is not None:
        value = np.asarray(info.value)
        return int(value.shape[-1]) if value.ndim >= 1 else None
    if info.shape is not None and len(info.shape) >= 1:
        last = info.shape[-1]
        return last if isinstance(last, int) else None
    return None
