"""Shared helpers of the spatial kernels (Conv*, pools, QLinearConv): pads, output sizes, windows.

Layout is always (N, C, *spatial). ``begin``/``end`` are the explicit pads of the spatial axes.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import prod

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from qonnx_tools.errors import InvalidAttributeError
from qonnx_tools.executor.registry import NodeContext


@dataclass(frozen=True)
class Geometry:
    """Kernel, strides, dilations, explicit pads and output sizes of one spatial op."""

    kernel: tuple[int, ...]
    strides: tuple[int, ...]
    dilations: tuple[int, ...]
    begin: tuple[int, ...]
    end: tuple[int, ...]
    out: tuple[int, ...]


def effective(kernel: int, dilation: int) -> int:
    """Extent of a dilated kernel."""
    return (kernel - 1) * dilation + 1


def ints(ctx: NodeContext, name: str, n: int, default: int) -> tuple[int, ...]:
    """Integer-tuple attribute of length n (``default`` repeated when absent)."""
    value = ctx.attr(name, None)
    if value is None or len(value) == 0:
        return (default,) * n
    if len(value) != n:
        raise InvalidAttributeError(f"node {ctx.name!r} ({ctx.op_type}): {name}={value} needs {n} values")
    return tuple(int(v) for v in value)


def auto_pad_mode(ctx: NodeContext) -> str:
    """The node's auto_pad, normalised (empty string means NOTSET)."""
    mode = ctx.attr("auto_pad", "NOTSET") or "NOTSET"
    if mode not in ("NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"):
        raise InvalidAttributeError(f"node {ctx.name!r} ({ctx.op_type}): unknown auto_pad {mode!r}")
    return mode


def same_pads(size: int, eff: int, stride: int, upper: bool) -> tuple[int, int, int]:
    """(begin, end, out) of SAME_UPPER/SAME_LOWER padding along one axis."""
    out = -(-size // stride)
    total = max(0, (out - 1) * stride + eff - size)
    small = total // 2
    return (small, total - small, out) if upper else (total - small, small, out)


def out_size(size: int, eff: int, stride: int, begin: int, end: int, ceil_mode: bool) -> int:
    """Output length along one axis; in ceil mode the last window must start inside input or begin pad."""
    span = size + begin + end - eff
    if not ceil_mode:
        return span // stride + 1
    out = -(-span // stride) + 1
    if (out - 1) * stride >= size + begin:
        out -= 1
    return out


def geometry(ctx: NodeContext, sizes: tuple[int, ...], kernel: tuple[int, ...], ceil_mode: bool = False) -> Geometry:
    """Resolve strides, dilations, pads (incl. auto_pad) and output sizes of a conv/pool node."""
    n = len(sizes)
    strides = ints(ctx, "strides", n, 1)
    dilations = ints(ctx, "dilations", n, 1)
    mode = auto_pad_mode(ctx)
    effs = [effective(k, d) for k, d in zip(kernel, dilations)]
    if mode in ("SAME_UPPER", "SAME_LOWER"):
        triples = [same_pads(s, e, st, mode == "SAME_UPPER") for s, e, st in zip(sizes, effs, strides)]
        begin, end, out = (tuple(t[i] for t in triples) for i in range(3))
    else:
        pads = (0,) * (2 * n) if mode == "VALID" else ints(ctx, "pads", 2 * n, 0)
        begin, end = pads[:n], pads[n:]
        out = tuple(out_size(s, e, st, b, en, ceil_mode) for s, e, st, b, en in zip(sizes, effs, strides, begin, end))
    if any(o < 0 for o in out):
        raise InvalidAttributeError(f"node {ctx.name!r} ({ctx.op_type}): negative output size {out}")
    return Geometry(tuple(kernel), strides, dilations, tuple(begin), tuple(end), tuple(out))


def pad_input(x: np.ndarray, geo: Geometry, value: float | int = 0) -> np.ndarray:
    """x padded with ``value`` so every output window of ``geo`` fits (trailing extra for ceil mode)."""
    widths = [(0, 0), (0, 0)]
    for size, k, s, d, b, e, o in zip(x.shape[2:], geo.kernel, geo.strides, geo.dilations, geo.begin, geo.end, geo.out):
        need = (o - 1) * s + effective(k, d) if o > 0 else 0
        widths.append((b, max(e, need - size - b, 0)))
    if all(w == (0, 0) for w in widths):
        return x
    return np.pad(x, widths, mode="constant", constant_values=value)


def windows(xp: np.ndarray, geo: Geometry, first_spatial: int = 2) -> np.ndarray:
    """Read-only view of the padded input, one window per output position: (N, C, *out, *kernel)
    for NC* input; with ``first_spatial=1`` (N, *spatial, C input) it is (N, *out, C, *kernel)."""
    n = len(geo.kernel)
    effs = tuple(effective(k, d) for k, d in zip(geo.kernel, geo.dilations))
    view = sliding_window_view(xp, effs, axis=tuple(range(first_spatial, first_spatial + n)))
    picks = tuple(slice(0, (o - 1) * s + 1 if o > 0 else 0, s) for o, s in zip(geo.out, geo.strides))
    taps = tuple(slice(None, None, d) for d in geo.dilations)
    rest = (slice(None),) * (xp.ndim - first_spatial - n)
    return view[(slice(None),) * first_spatial + picks + rest + taps]


def accumulator(dtype: np.dtype) -> np.dtype:
    """Arithmetic dtype of a float conv/pool: float32/float64 stay, narrower floats widen to float32."""
    dtype = np.dtype(dtype)
    if dtype in (np.float32, np.float64):
        return dtype
    if dtype.kind in "iub":
        return np.dtype(np.int64)
    return np.dtype(np.float32)


def conv_core(x: np.ndarray, w: np.ndarray, geo: Geometry, group: int) -> np.ndarray:
    """Grouped N-D correlation of already-typed x (N,C,*) and w (M,C/group,*k): im2col + one matmul."""
    n_batch, channels = x.shape[:2]
    m_out = w.shape[0]
    if channels % group or m_out % group or w.shape[1] * group != channels:
        raise InvalidAttributeError(f"conv: channels {channels}, weight {w.shape} and group {group} do not match")
    cg, mg, taps = channels // group, m_out // group, prod(geo.kernel)
    if cg == 1 and group > 1:
        win = windows(pad_input(x, geo), geo)  # N, C, *out, *k
        wmat = np.ascontiguousarray(w).reshape(group, mg, taps)
        return depthwise(win, wmat, geo).reshape((n_batch, m_out) + geo.out)
    cols = _im2col_channels_last(pad_input(x, geo), geo, group)  # (G, N*P, K*C/G), columns ordered (*k, c)
    nsp = len(geo.kernel)
    wmat = w.reshape((group, mg, cg) + tuple(geo.kernel))
    wmat = wmat.transpose((0, 1) + tuple(range(3, 3 + nsp)) + (2,)).reshape(group, mg, taps * cg)
    y = np.matmul(cols, wmat.transpose(0, 2, 1))  # (G, N*P, K*Cg) @ (G, K*Cg, Mg) -> (G, N*P, Mg)
    y = y.reshape(group, n_batch, prod(geo.out), mg).transpose(1, 0, 3, 2)
    return y.reshape((n_batch, m_out) + geo.out)


def _im2col_channels_last(xp: np.ndarray, geo: Geometry, group: int) -> np.ndarray:
    """Columns (G, N*P, K*C/G) of the padded input, each row ordered (kernel tap, channel).

    Why channels last: the im2col copy then moves contiguous runs of channels instead
    of gathering single elements from NCHW windows (about 2x faster on CNV's convs).
    One GEMM per group (a stacked (N, G, P, CK) matmul would be one small BLAS call per
    batch element)."""
    n_batch, channels = xp.shape[:2]
    nsp = len(geo.kernel)
    last = np.ascontiguousarray(np.moveaxis(xp, 1, -1))  # N, *spatial, C
    view = windows(last, geo, first_spatial=1)  # N, *out, C, *k
    order = tuple(range(1 + nsp)) + tuple(range(2 + nsp, 2 + 2 * nsp)) + (1 + nsp,)
    rows = n_batch * prod(geo.out)
    cols = view.transpose(order).reshape(rows, prod(geo.kernel), group, channels // group)  # N*P, K, G, Cg
    return np.ascontiguousarray(cols.transpose(2, 0, 1, 3)).reshape(group, rows, -1)


def depthwise(win: np.ndarray, wmat: np.ndarray, geo: Geometry) -> np.ndarray:
    """One input channel per group: multiply-accumulate one kernel tap at a time (N, G, Mg, *out)."""
    group, mg = wmat.shape[:2]
    n = len(geo.out)
    y = np.zeros((win.shape[0], group, mg) + geo.out, dtype=np.result_type(win.dtype, wmat.dtype))
    for t, tap in enumerate(np.ndindex(*geo.kernel)):
        y += win[(Ellipsis,) + tap][:, :, None] * wmat[:, :, t].reshape((1, group, mg) + (1,) * n)
    return y


def exact_in_float64(a: np.ndarray, b: np.ndarray, terms: int) -> bool:
    """True when every partial sum of ``terms`` products a*b is an integer float64 holds exactly."""
    if a.size == 0 or b.size == 0:
        return True
    bound = float(np.abs(a).max()) * float(np.abs(b).max()) * max(terms, 1)
    return bound < 2.0**53


def integer_conv(x: np.ndarray, w: np.ndarray, geo: Geometry, group: int) -> np.ndarray:
    """Exact int64 convolution of integer x and w; runs through float64 BLAS when that is exact."""
    terms = w.shape[1] * prod(geo.kernel)
    if exact_in_float64(x, w, terms):
        y = conv_core(x.astype(np.float64), w.astype(np.float64), geo, group)
        return y.astype(np.int64)
    return conv_core(x.astype(np.int64), w.astype(np.int64), geo, group)


def integer_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Exact int64 matmul (numpy semantics) of integer a and b; float64 BLAS when that is exact."""
    if exact_in_float64(a, b, a.shape[-1]):
        return np.matmul(a.astype(np.float64), b.astype(np.float64)).astype(np.int64)
    return np.matmul(a.astype(np.int64), b.astype(np.int64))


def channel_vector(v: np.ndarray, ndim: int) -> np.ndarray:
    """A per-channel vector shaped to broadcast over (N, C, *spatial) of rank ``ndim``."""
    return np.asarray(v).reshape((1, -1) + (1,) * (ndim - 2))
