"""Threshold arithmetic: quantizers as step functions, and absorbing float ops into thresholds.

MultiThreshold counts ``x >= t``. Every threshold here is computed as *the smallest
float32 ``t`` for which a monotone float32 predicate holds*, found by binary search
over the float32 bit patterns (about 32 vectorised evaluations). The predicate is
the very arithmetic the executor performs (quantizer kernels, ``x * c`` in float32,
...), so the result is exact for every float32 input, ties included:

* IntQuant ROUND is half-to-even: at ``x/s = m - 0.5`` with ``m`` odd the tie rounds
  down, so the threshold for level ``m`` is the next float32 above the tie
  (``np.nextafter``); with ``m`` even the tie itself reaches the level. FLOOR, CEIL,
  UP, DOWN, HALF_UP and HALF_DOWN fall out the same way, and so does the rounding of
  ``x / s`` itself (its float32 quotient, not the real one, is what gets rounded).
* Absorbing ``y = x * c`` (or ``x + c``, ``x / c``) into thresholds ``t``:
  ``t'`` = smallest float32 x with ``fl32(x * c) >= t``. Negative ``c`` makes the
  predicate decreasing; then ``[fl(x*c) >= t] = 1 - [x >= t']`` with ``t'`` the
  smallest x for which it fails, i.e. the comparison is flipped and the caller
  adjusts ``out_scale``/``out_bias``.
* Pruned channels (``c == 0`` or tiny ``c``) give a predicate that is always or never
  true: the threshold becomes ``-inf`` (always reached) or ``+inf`` (never reached
  by a finite input), which MultiThreshold accepts.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from qonnx_tools.decline import Decline

F32 = np.float32
#: Bit pattern (as a non-negative key) of the largest finite float32.
_MAX_KEY = 0x7F7FFFFF


def float_to_key(x: np.ndarray) -> np.ndarray:
    """Order-preserving int64 keys of float32 values (-0.0 and +0.0 share key 0)."""
    bits = np.asarray(x, dtype=F32).view(np.uint32).astype(np.int64)
    magnitude = bits & 0x7FFFFFFF
    return np.where(bits >> 31 != 0, -magnitude, magnitude)


def key_to_float(k: np.ndarray) -> np.ndarray:
    """Inverse of ``float_to_key`` (key 0 gives +0.0)."""
    k = np.asarray(k, dtype=np.int64)
    magnitude = np.abs(k).astype(np.uint32)
    bits = np.where(k < 0, magnitude | np.uint32(0x80000000), magnitude).astype(np.uint32)
    return bits.view(F32)


#: Half-width (in float32 steps) of the window a guess opens: 11 halvings instead of ~33.
_WINDOW = 1024


def least_true(
    pred: Callable[[np.ndarray], np.ndarray],
    shape: tuple[int, ...],
    guesses: Sequence[np.ndarray] = (),
) -> np.ndarray:
    """Elementwise smallest float32 ``t`` with ``pred(t)`` true, for predicates non-decreasing in ``t``.

    ``pred`` takes a float32 array of ``shape`` and returns a bool array of that shape.
    Where the predicate holds for every finite float32 the result is ``-inf``; where it
    holds for none, ``+inf``. ``guesses`` (arrays broadcasting to ``shape``) only speed
    the search up: the first one whose +-_WINDOW-step window is seen to bracket the
    answer (predicate false at its low end, true at its high end) narrows the search
    for that element; elsewhere the whole float32 range is searched. The result does
    not depend on them.
    """
    raw = pred

    def pred(t):  # overflow / 0 * inf in the probed arithmetic is expected at the extremes
        with np.errstate(all="ignore"):
            return np.asarray(raw(t), dtype=bool)

    lo = np.full(shape, -_MAX_KEY, dtype=np.int64)
    hi = np.full(shape, _MAX_KEY, dtype=np.int64)
    always = pred(key_to_float(lo))
    never = ~pred(key_to_float(hi))
    active = ~always & ~never
    open_ = active.copy()
    for guess in guesses:
        if not open_.any():
            break
        with np.errstate(all="ignore"):
            center = float_to_key(np.broadcast_to(np.asarray(guess, dtype=F32), shape))
        low = np.clip(center - _WINDOW, -_MAX_KEY, _MAX_KEY)
        high = np.clip(center + _WINDOW, -_MAX_KEY, _MAX_KEY)
        bracketed = open_ & ~pred(key_to_float(low)) & pred(key_to_float(high))
        lo, hi = np.where(bracketed, low, lo), np.where(bracketed, high, hi)
        open_ &= ~bracketed
    for _ in range(40):  # the key range spans < 2**32 values: 33 halvings suffice
        todo = active & (hi - lo > 1)
        if not todo.any():
            break
        mid = lo + (hi - lo) // 2
        hit = pred(key_to_float(mid))
        hi = np.where(todo & hit, mid, hi)
        lo = np.where(todo & ~hit, mid, lo)
    result = key_to_float(hi).copy()
    result[always] = -np.inf
    result[never] = np.inf
    return result


def step_thresholds(
    f: Callable[[np.ndarray], np.ndarray], levels: np.ndarray, guesses: Sequence[np.ndarray] = ()
) -> np.ndarray:
    """Thresholds of a monotone non-decreasing step function ``f`` (float32 -> float32).

    ``levels`` is (R, T): ``t[r, k]`` = smallest float32 x with ``f(x)[r, k] >= levels[r, k]``,
    where ``f`` is evaluated on an (R, T) grid (row r uses channel r's parameters).
    ``guesses``: likely switching points, tried in order (speed only; see ``least_true``).
    """
    levels = np.asarray(levels, dtype=F32)
    return least_true(lambda x: np.asarray(f(x)) >= levels, levels.shape, guesses)


def level_guesses(levels: np.ndarray, step: np.ndarray) -> list[np.ndarray]:
    """Where a quantizer with this ``step`` reaches integer level ``k``: at ``(k - 0.5) * step``
    (the round-to-nearest modes), ``(k - 1) * step`` (ceil-like) or ``k * step`` (floor-like)."""
    k = np.asarray(levels, dtype=np.float64)
    s = np.asarray(step, dtype=np.float64)
    with np.errstate(all="ignore"):
        return [((k + offset) * s).astype(F32) for offset in (-0.5, -1.0, 0.0)]


def _apply(op: str, x: np.ndarray, c: np.ndarray) -> np.ndarray:
    """``x op c`` exactly as the executor computes it for float32 x (result rounded to float32)."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if op == "Mul":
            return np.multiply(x, c).astype(F32, copy=False)
        if op == "Add":
            return np.add(x, c).astype(F32, copy=False)
        if op == "Sub":
            return np.subtract(x, c).astype(F32, copy=False)
        if op == "Div":
            return np.divide(x, c).astype(F32, copy=False)
    raise ValueError(op)


def absorb(thresholds: np.ndarray, op: str, c: np.ndarray) -> tuple[np.ndarray, bool] | Decline:
    """Thresholds ``t'`` for ``x`` such that counting ``x op c >= t`` equals counting on ``x``.

    ``thresholds`` is (R, T); ``c`` broadcasts to (R, 1) (one value per row, or one for all).
    Returns ``(t', flipped)``. When ``flipped`` is False, ``[fl(x op c) >= t] == [x >= t']``.
    When True (every factor negative or zero), ``[fl(x op c) >= t] == 1 - [x >= t']``: the
    caller negates ``out_scale`` and adds ``out_scale * T`` to ``out_bias``. Mixed-sign
    factors cannot be expressed with one comparison direction: returns a ``Decline``.
    """
    t = np.asarray(thresholds, dtype=F32)
    rows = t.shape[0]
    c = np.asarray(c)
    c = np.broadcast_to(c.reshape(-1, 1) if c.size > 1 else c.reshape(1, 1), (rows, 1))
    if op == "Add" or op == "Sub":
        decreasing = False
    else:
        if np.any(np.isnan(c)):
            return Decline("factor contains NaN")
        if op == "Div" and np.any(c == 0):
            return Decline("divisor contains zero")
        neg, pos = bool(np.any(c < 0)), bool(np.any(c > 0))
        if neg and pos:
            return Decline("mixed-sign per-channel factor (factor out its sign first)")
        decreasing = neg
    c = c.astype(F32) if c.dtype != np.float64 else c
    guesses = [_inverse(op, t, c)]
    if decreasing:
        new = least_true(lambda x: ~(_apply(op, x, c) >= t), t.shape, guesses)
    else:
        new = least_true(lambda x: _apply(op, x, c) >= t, t.shape, guesses)
    return np.sort(new, axis=1), decreasing


def _inverse(op: str, t: np.ndarray, c: np.ndarray) -> np.ndarray:
    """The real-number ``x`` with ``x op c == t``: where the float32 switching point lies, within ulps."""
    t64, c64 = t.astype(np.float64), np.asarray(c, dtype=np.float64)
    with np.errstate(all="ignore"):
        x = {"Mul": lambda: t64 / c64, "Div": lambda: t64 * c64, "Add": lambda: t64 - c64, "Sub": lambda: t64 + c64}[op]()
        return x.astype(F32)


def absorb_relu(thresholds: np.ndarray) -> np.ndarray:
    """Thresholds for x when the MultiThreshold read ``relu(x)``: a threshold <= 0 is always reached."""
    t = np.asarray(thresholds, dtype=F32)
    return np.sort(np.where(t <= 0, F32(-np.inf), t), axis=1)


def round_to_integer_input(thresholds: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """For integer inputs in [lo, hi]: ``x >= t`` iff ``x >= ceil(t)``; clip to [lo, hi + 1].

    A threshold at or below ``lo`` is always reached, one above ``hi`` never.
    """
    t = np.asarray(thresholds, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        r = np.clip(np.ceil(t), lo, hi + 1)
    return np.sort(r.astype(F32), axis=1)


def out_datatype_name(out_scale: float, out_bias: float, n_thresholds: int) -> str:
    """The datatype of ``out_scale * k + out_bias`` (k = 0..T), or '' when not integer."""
    from qonnx_tools.datatypes import BIPOLAR, smallest_int_type

    values = out_scale * np.arange(n_thresholds + 1, dtype=np.float64) + out_bias
    if not np.all(np.isfinite(values)) or not np.all(values == np.round(values)):
        return ""
    if n_thresholds >= 1 and bool(np.all(BIPOLAR.allowed(values))):
        return "BIPOLAR"
    try:
        return str(smallest_int_type(float(values.min()), float(values.max())))
    except Exception:
        return ""
