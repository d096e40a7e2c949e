"""Resize (opsets 10-19) and Upsample (opsets 7, 9): nearest, n-linear and n-cubic, separably per axis.

Every resized axis becomes a gather of a few taps plus a weighted sum (no Python loop over
pixels). Like onnxruntime, output sizes from scales and the source coordinates are computed in
float32; the weighted sums run in float32 (float64 for double input). Integer inputs are rounded
half to even and saturated back to their type.

Where onnxruntime departs from the ONNX spec/conformance suite we follow the spec:
``length_resized`` in align_corners/pytorch_half_pixel/tf_crop_and_resize is scale * length
(fractional) when scales are given, and a scale != 1 is applied even when the output length
equals the input length (onnxruntime then copies the input).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Sequence

import numpy as np

from qonnx_tools.errors import InvalidAttributeError
from qonnx_tools.executor.registry import NodeContext, register

F32 = np.float32


@dataclass(frozen=True)
class Options:
    """Interpolation options shared by every axis of one node."""

    mode: str = "nearest"
    transform: str = "half_pixel"
    nearest_mode: str = "round_prefer_floor"
    cubic_a: float = -0.75
    exclude_outside: bool = False
    extrapolation: float = 0.0
    antialias: bool = False


@dataclass(frozen=True)
class AxisPlan:
    """How one axis is resampled; ``length`` is the spec's length_resized (fractional when from a scale)."""

    axis: int
    in_len: int
    out_len: int
    scale: float
    length: float
    roi: tuple[float, float] = (0.0, 1.0)


def source_coords(plan: AxisPlan, transform: str) -> np.ndarray:
    """Float32 source coordinate of each output index (ONNX coordinate_transformation_mode)."""
    x = np.arange(plan.out_len, dtype=F32)
    s, n_in, n_out = F32(plan.scale), F32(plan.in_len), F32(plan.length)
    half = F32(0.5)
    if transform == "half_pixel":
        return (x + half) / s - half
    if transform == "half_pixel_symmetric":
        adjustment = F32(plan.out_len) / (s * n_in)
        offset = (n_in / F32(2)) * (F32(1) - adjustment)
        return offset + (x + half) / s - half
    if transform == "pytorch_half_pixel":
        return (x + half) / s - half if plan.length > 1 else np.zeros_like(x)
    if transform == "align_corners":
        return np.zeros_like(x) if plan.length == 1 else x * (n_in - F32(1)) / (n_out - F32(1))
    if transform == "asymmetric":
        return x / s
    if transform == "tf_half_pixel_for_nn":
        return (x + half) / s
    if transform == "tf_crop_and_resize":
        start, end = F32(plan.roi[0]), F32(plan.roi[1])
        if plan.length == 1:
            return np.full_like(x, half * (start + end) * (n_in - F32(1)))
        return start * (n_in - F32(1)) + x * (end - start) * (n_in - F32(1)) / (n_out - F32(1))
    raise InvalidAttributeError(f"Resize: unknown coordinate_transformation_mode {transform!r}")


def nearest_index(coords: np.ndarray, nearest_mode: str, downsample: bool) -> np.ndarray:
    """Integer source index per coordinate for an ONNX nearest_mode ('simple' is opset-10 rounding)."""
    if nearest_mode == "round_prefer_floor":
        idx = np.ceil(coords - F32(0.5))
    elif nearest_mode == "round_prefer_ceil":
        idx = np.floor(coords + F32(0.5))
    elif nearest_mode == "floor":
        idx = np.floor(coords)
    elif nearest_mode == "ceil":
        idx = np.ceil(coords)
    elif nearest_mode == "simple":
        idx = np.ceil(coords) if downsample else np.trunc(coords)
    else:
        raise InvalidAttributeError(f"Resize: unknown nearest_mode {nearest_mode!r}")
    return idx.astype(np.int64)


def cubic_kernel(a: float) -> Callable[[np.ndarray], np.ndarray]:
    """Keys cubic convolution kernel with coefficient ``a``."""

    def f(t: np.ndarray) -> np.ndarray:
        t = np.abs(t)
        near = ((a + 2) * t - (a + 3)) * t * t + 1
        far = ((a * t - 5 * a) * t + 8 * a) * t - 4 * a
        return np.where(t < 1, near, np.where(t < 2, far, 0.0))

    return f


def linear_kernel(t: np.ndarray) -> np.ndarray:
    """Triangle kernel."""
    return np.maximum(0.0, 1.0 - np.abs(t))


def taps_linear(coords: np.ndarray, n_in: int) -> tuple[np.ndarray, np.ndarray]:
    """Two taps per output: coordinate clamped into the input, floor and floor+1."""
    c = np.clip(coords.astype(np.float64), 0, n_in - 1)
    lo = np.floor(c).astype(np.int64)
    frac = c - lo
    idx = np.stack([lo, np.minimum(lo + 1, n_in - 1)], axis=1)
    return idx, np.stack([1 - frac, frac], axis=1)


def taps_cubic(coords: np.ndarray, n_in: int, opts: Options) -> tuple[np.ndarray, np.ndarray]:
    """Four taps per output; outside taps repeat the edge, or are dropped and renormalised (exclude_outside)."""
    c = coords.astype(np.float64)
    base = np.floor(c).astype(np.int64)
    idx = base[:, None] + np.arange(-1, 3)
    weights = cubic_kernel(opts.cubic_a)(c[:, None] - idx)
    if opts.exclude_outside:
        weights = np.where((idx >= 0) & (idx < n_in), weights, 0.0)
        weights = weights / weights.sum(axis=1, keepdims=True)
    return np.clip(idx, 0, n_in - 1), weights


def taps_antialias(coords: np.ndarray, plan: AxisPlan, opts: Options) -> tuple[np.ndarray, np.ndarray]:
    """Downsampling filter stretched by 1/scale and normalised; outside taps repeat the edge or are dropped."""
    shrink = min(1.0, float(plan.scale))
    radius = (1.0 if opts.mode == "linear" else 2.0) / shrink
    kernel = linear_kernel if opts.mode == "linear" else cubic_kernel(opts.cubic_a)
    c = coords.astype(np.float64)
    first = np.floor(c + 0.5 - radius + 0.5).astype(np.int64)
    stop = np.floor(c + 0.5 + radius + 0.5).astype(np.int64)
    idx = first[:, None] + np.arange(int(np.ceil(radius)) * 2 + 2)
    keep = idx < stop[:, None]
    if opts.exclude_outside:
        keep &= (idx >= 0) & (idx < plan.in_len)
    weights = np.where(keep, kernel((idx - c[:, None]) * shrink), 0.0)
    total = weights.sum(axis=1, keepdims=True)
    weights = np.divide(weights, total, out=np.zeros_like(weights), where=total != 0)
    return np.clip(idx, 0, plan.in_len - 1), weights


def resample_axis(x: np.ndarray, plan: AxisPlan, opts: Options, work: np.dtype) -> tuple[np.ndarray, np.ndarray | None]:
    """x resampled along one axis, and the axis' out-of-roi mask (tf_crop_and_resize only)."""
    coords = source_coords(plan, opts.transform)
    outside = None
    if opts.transform == "tf_crop_and_resize":
        outside = (coords < 0) | (coords > plan.in_len - 1)
    if opts.mode == "nearest":
        nmode = opts.nearest_mode
        idx = np.clip(nearest_index(coords, nmode, plan.scale < 1), 0, plan.in_len - 1)
        return np.take(x, idx, axis=plan.axis), outside
    if opts.antialias and plan.scale < 1:
        idx, weights = taps_antialias(coords, plan, opts)
    elif opts.mode == "linear":
        idx, weights = taps_linear(coords, plan.in_len)
    elif opts.mode == "cubic":
        idx, weights = taps_cubic(coords, plan.in_len, opts)
    else:
        raise InvalidAttributeError(f"Resize: unknown mode {opts.mode!r}")
    shape = [1] * x.ndim
    shape[plan.axis] = plan.out_len
    y = np.zeros(x.shape[: plan.axis] + (plan.out_len,) + x.shape[plan.axis + 1 :], dtype=work)
    for t in range(idx.shape[1]):
        y += np.take(x, idx[:, t], axis=plan.axis) * weights[:, t].astype(work).reshape(shape)
    return y, outside


def interpolate(x: np.ndarray, plans: Sequence[AxisPlan], opts: Options) -> np.ndarray:
    """Resample x along every planned axis (separable), then apply tf_crop_and_resize extrapolation."""
    work = np.dtype(np.float64) if x.dtype == np.float64 else np.dtype(F32)
    y = x if opts.mode == "nearest" else x.astype(work)
    mask = None
    for plan in plans:
        if plan.in_len == plan.out_len and plan.scale == 1 and opts.transform != "tf_crop_and_resize":
            continue  # identity (tf_half_pixel_for_nn would shift unscaled axes by half a pixel)
        y, outside = resample_axis(y, plan, opts, work)
        if outside is not None and outside.any():
            shape = [1] * x.ndim
            shape[plan.axis] = plan.out_len
            axis_mask = outside.reshape(shape)
            mask = axis_mask if mask is None else (mask | axis_mask)
    if mask is not None:
        y = np.where(mask, np.asarray(opts.extrapolation).astype(y.dtype), y)
    return to_dtype(y, x.dtype)


def to_dtype(y: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Cast back to the input type; integers are rounded half to even and saturated."""
    if y.dtype == dtype:
        return y
    if np.dtype(dtype).kind in "iu":
        info = np.iinfo(dtype)
        return np.clip(np.rint(y), info.min, info.max).astype(dtype)
    return y.astype(dtype)


def plans_from_scales(shape: Sequence[int], scales: Sequence[float], axes: Sequence[int]) -> list[AxisPlan]:
    """Axis plans for given scales: output length floor(float32(scale * length)), as onnxruntime does."""
    plans = []
    for axis, scale in zip(axes, scales):
        s = F32(scale)
        if s <= 0:
            raise InvalidAttributeError(f"Resize: scale {scale} must be positive")
        length = s * F32(shape[axis])
        plans.append(AxisPlan(axis, shape[axis], int(np.floor(length)), float(s), float(length)))
    return plans


def plans_from_sizes(shape: Sequence[int], sizes: Sequence[int], axes: Sequence[int], policy: str) -> list[AxisPlan]:
    """Axis plans for given sizes, honouring keep_aspect_ratio_policy."""
    ratios = [F32(int(n)) / F32(shape[a]) for n, a in zip(sizes, axes)]
    if policy == "stretch":
        return [AxisPlan(a, shape[a], int(n), float(r), float(n)) for a, n, r in zip(axes, sizes, ratios)]
    if policy not in ("not_larger", "not_smaller"):
        raise InvalidAttributeError(f"Resize: unknown keep_aspect_ratio_policy {policy!r}")
    r = min(ratios) if policy == "not_larger" else max(ratios)
    lengths = [int(np.floor(r * F32(shape[a]) + F32(0.5))) for a in axes]
    return [AxisPlan(a, shape[a], n, float(r), float(n)) for a, n in zip(axes, lengths)]


def options(ctx: NodeContext) -> Options:
    """Interpolation options of an opset-11+ Resize node (ONNX defaults applied)."""
    return Options(
        mode=ctx.attr("mode", "nearest"),
        transform=ctx.attr("coordinate_transformation_mode", "half_pixel"),
        nearest_mode=ctx.attr("nearest_mode", "round_prefer_floor"),
        cubic_a=float(ctx.attr("cubic_coeff_a", -0.75)),
        exclude_outside=bool(ctx.attr("exclude_outside", 0)),
        extrapolation=float(ctx.attr("extrapolation_value", 0.0)),
        antialias=bool(ctx.attr("antialias", 0)),
    )


def present(v: np.ndarray | None) -> bool:
    """An optional input that is given and non-empty."""
    return v is not None and np.size(v) > 0


def legacy(ctx: NodeContext, x: np.ndarray, scales: Sequence[float]) -> np.ndarray:
    """Resize-10/Upsample: asymmetric coordinates; nearest truncates (ceil when downsampling)."""
    mode = ctx.attr("mode", "nearest")
    if mode not in ("nearest", "linear", "bilinear"):
        raise InvalidAttributeError(f"node {ctx.name!r} ({ctx.op_type}): unknown mode {mode!r}")
    if len(scales) != x.ndim:
        raise InvalidAttributeError(f"node {ctx.name!r} ({ctx.op_type}): {len(scales)} scales for rank {x.ndim}")
    opts = Options(mode="nearest" if mode == "nearest" else "linear", transform="asymmetric", nearest_mode="simple")
    return interpolate(x, plans_from_scales(x.shape, scales, range(x.ndim)), opts)


@register("Upsample", since=7)
def upsample_v7(ctx: NodeContext, x: np.ndarray) -> np.ndarray:
    """Upsample-7: scales attribute."""
    return legacy(ctx, x, ctx.required_attr("scales"))


@register("Upsample", since=9)
def upsample_v9(ctx: NodeContext, x: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """Upsample-9: scales input."""
    return legacy(ctx, x, np.asarray(scales, dtype=F32).reshape(-1).tolist())


@register("Resize", since=10)
def resize_v10(ctx: NodeContext, x: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """Resize-10: scales input, asymmetric coordinates."""
    return legacy(ctx, x, np.asarray(scales, dtype=F32).reshape(-1).tolist())


@register("Resize", since=11)
def resize(
    ctx: NodeContext,
    x: np.ndarray,
    roi: np.ndarray | None = None,
    scales: np.ndarray | None = None,
    sizes: np.ndarray | None = None,
) -> np.ndarray:
    """Resize-11..19: roi, scales or sizes, axes, keep_aspect_ratio_policy, antialias."""
    axes = [int(a) + x.ndim if int(a) < 0 else int(a) for a in (ctx.attr("axes", None) or range(x.ndim))]
    if present(sizes):
        policy = ctx.attr("keep_aspect_ratio_policy", "stretch")
        plans = plans_from_sizes(x.shape, np.asarray(sizes).reshape(-1).tolist(), axes, policy)
    elif present(scales):
        plans = plans_from_scales(x.shape, np.asarray(scales, dtype=F32).reshape(-1).tolist(), axes)
    else:
        raise InvalidAttributeError(f"node {ctx.name!r} (Resize): neither scales nor sizes given")
    if len(plans) != len(axes):
        raise InvalidAttributeError(f"node {ctx.name!r} (Resize): scales/sizes do not match axes {axes}")
    opts = options(ctx)
    if opts.transform == "tf_crop_and_resize":
        if not present(roi):
            raise InvalidAttributeError(f"node {ctx.name!r} (Resize): tf_crop_and_resize needs roi")
        r = np.asarray(roi, dtype=np.float64).reshape(-1)
        k = len(axes)
        if r.size == 2 * x.ndim and k != x.ndim:
            r = np.concatenate([r[: x.ndim][axes], r[x.ndim :][axes]])
        plans = [replace(p, roi=(r[i], r[i + k])) for i, p in enumerate(plans)]
    return interpolate(x, plans, opts)
