"""Checks the ops' ``check_params`` rules share: integer, positive and finite parameters that
broadcast to X, each adding a :class:`~qonnx_tools.ops.base.ParamProblem` when it fails.

The checks work on plain arrays (the constant values of the node's parameter inputs, by
input name) and X's shape, so that ``qonnx check`` (protobuf) and commands that transform
(onnx_ir) call the same rules.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from qonnx_tools.ops.base import ParamProblem

ERROR, WARNING = "error", "warning"


class ParamCheck:
    """The constant parameters of one node and the problems found so far."""

    def __init__(self, params: Mapping[str, np.ndarray], x_shape: Sequence[int | str | None] | None) -> None:
        self.params = params
        self.x_shape = None if x_shape is None else tuple(x_shape)
        self.problems: list[ParamProblem] = []

    def error(self, message: str, severity: str = ERROR) -> None:
        self.problems.append(ParamProblem(message, severity))

    def value(self, name: str) -> np.ndarray | None:
        """The constant value of input ``name``, or None when it is not known."""
        return self.params.get(name)

    # checks: each returns the value when it is legal, None otherwise
    def integer(self, name: str, lo: int, hi: int | None, note: str = "") -> np.ndarray | None:
        arr = self.value(name)
        if arr is None:
            return None
        values = arr.astype(np.float64)
        bad = ~np.isfinite(values)
        bad |= np.where(bad, False, values != np.round(np.nan_to_num(values)))
        bad |= values < lo
        if hi is not None:
            bad |= values > hi
        if bad.any():
            bound = f"{lo}..{hi}" if hi is not None else f">= {lo}"
            self.error(f"{name} must be an integer in {bound}{note}, got {shown(arr, bad)}")
            return None
        self.broadcasts(name, arr)
        return values.astype(np.int64)

    def positive(self, name: str) -> np.ndarray | None:
        arr = self.value(name)
        if arr is None:
            return None
        values = arr.astype(np.float64)
        bad = ~(np.isfinite(values) & (values > 0))
        if bad.any():
            self.error(f"{name} must be finite and > 0, got {shown(arr, bad)}")
            return None
        self.broadcasts(name, arr)
        return values

    def finite(self, name: str) -> np.ndarray | None:
        arr = self.value(name)
        if arr is None:
            return None
        values = arr.astype(np.float64)
        bad = ~np.isfinite(values)
        if bad.any():
            self.error(f"{name} must be finite, got {shown(arr, bad)}")
            return None
        self.broadcasts(name, arr)
        return values

    def broadcasts(self, name: str, arr: np.ndarray) -> None:
        """Report a parameter that does not broadcast to X's (known) shape without growing it."""
        x_shape = self.x_shape
        if x_shape is None:
            return
        shape = arr.shape
        ok = len(shape) <= len(x_shape)
        if ok:
            for p, x in zip(reversed(shape), reversed(x_shape)):
                if p != 1 and isinstance(x, int) and p != x:
                    ok = False
        if not ok:
            text = "(" + ", ".join("?" if not isinstance(d, int) else str(d) for d in x_shape) + ")"
            self.error(f"{name} of shape {tuple(shape)} does not broadcast to X's shape {text}")


def shown(arr: np.ndarray, bad: np.ndarray) -> str:
    """The offending elements (first four), and how many of how many when not all."""
    arr = np.asarray(arr)
    bad = np.broadcast_to(bad, arr.shape) if bad.shape != arr.shape else bad
    values = arr[bad].ravel()
    text = ", ".join(number(v) for v in values[:4]) + (", ..." if values.size > 4 else "")
    if arr.size == 1:
        return text
    return f"[{text}] ({values.size} of {arr.size} elements)"


def number(value: Any) -> str:
    """A number as users write it: integral floats without ``.0``, others with ``%g``."""
    value = value.item() if hasattr(value, "item") else value
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return f"{value:g}" if isinstance(value, float) else str(value)
