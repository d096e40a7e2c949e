"""Quantized datatypes: the value set a tensor of a quantized network may hold.

A :class:`DataType` is an immutable, hashable description such as ``INT4``,
``FIXED<8,3>`` or ``FLOAT<4,3,7>``. It answers what the value set is (bit width,
sign, range, resolution) and whether given numbers belong to it (:meth:`DataType.allowed`).
Names are the spellings used by qonnx and FINN in ``quantization_annotation`` and
node attributes, so models annotated here stay readable by those tools.

Value sets:

* ``INTn`` / ``UINTn`` (n = 1..64): two's complement / unsigned integers.
  ``INT1`` is {-1, 0}; ``UINT1`` is {0, 1}.
* ``BIPOLAR`` {-1, +1}, ``BINARY`` {0, 1}, ``TERNARY`` {-1, 0, 1}.
* ``FIXED<w,i>``: signed fixed point, ``w`` bits of which ``i`` (sign included) are
  integer bits; step ``2**-(w-i)``.
* ``SCALEDINT<n>``: an n-bit signed integer times an unknown float scale. The scale is
  unknown, so every finite float is allowed and the range is unbounded.
* ``FLOAT32``, ``FLOAT16``, ``BFLOAT16``: the IEEE / brain float formats (finite values).
* ``FLOAT<e,m,b>``: minifloat with a sign bit, ``e`` exponent bits, ``m`` mantissa bits
  and exponent bias ``b``; subnormals are supported and no code is reserved for inf/NaN.
  ``FLOAT<e,m>`` means the default bias ``2**(e-1) - 1``.

NaN and infinities are never allowed in any type.
"""

from __future__ import annotations

import enum
import math
import re
from dataclasses import dataclass
from typing import Any, overload

import ml_dtypes
import numpy as np
import numpy.typing as npt

from qonnx_tools.errors import InvalidDataTypeError

__all__ = [
    "BFLOAT16",
    "BINARY",
    "BIPOLAR",
    "FLOAT16",
    "FLOAT32",
    "TERNARY",
    "DataKind",
    "DataType",
    "numpy_container",
    "smallest_int_type",
]

#: Largest bit width accepted for INTn/UINTn, FIXED<w,i> and SCALEDINT<n>.
MAX_INT_BITS = 64


class DataKind(str, enum.Enum):
    """The family a :class:`DataType` belongs to; its parameters live in ``DataType.params``."""

    INT = "INT"  # params: (bits,)
    UINT = "UINT"  # params: (bits,)
    BIPOLAR = "BIPOLAR"  # params: ()
    BINARY = "BINARY"  # params: ()
    TERNARY = "TERNARY"  # params: ()
    FIXED = "FIXED"  # params: (total_bits, int_bits)
    SCALEDINT = "SCALEDINT"  # params: (bits,)
    FLOAT32 = "FLOAT32"  # params: ()
    FLOAT16 = "FLOAT16"  # params: ()
    BFLOAT16 = "BFLOAT16"  # params: ()
    MINIFLOAT = "MINIFLOAT"  # params: (exponent_bits, mantissa_bits, bias)


_INTEGER_KINDS = frozenset(
    {DataKind.INT, DataKind.UINT, DataKind.BIPOLAR, DataKind.BINARY, DataKind.TERNARY}
)
_FLOAT_KINDS = frozenset(
    {DataKind.FLOAT32, DataKind.FLOAT16, DataKind.BFLOAT16, DataKind.MINIFLOAT}
)
_PARAM_COUNT = {
    DataKind.INT: 1,
    DataKind.UINT: 1,
    DataKind.FIXED: 2,
    DataKind.SCALEDINT: 1,
    DataKind.MINIFLOAT: 3,
}
#: (exponent bits, mantissa bits, bias) of the standard float formats.
_STANDARD_FLOAT_LAYOUT = {
    DataKind.FLOAT32: (8, 23, 127),
    DataKind.FLOAT16: (5, 10, 15),
    DataKind.BFLOAT16: (8, 7, 127),
}
#: numpy type used to test exact representability in a standard float format.
_STANDARD_FLOAT_NUMPY: dict[DataKind, Any] = {
    DataKind.FLOAT32: np.float32,
    DataKind.FLOAT16: np.float16,
    DataKind.BFLOAT16: ml_dtypes.bfloat16,
}


def _quote(text: object) -> str:
    """``repr`` of a (possibly long) offending string, kept to one short line."""
    shown = repr(text)
    return shown if len(shown) <= 80 else shown[:77] + "..."


def _minifloat_problem(e: int, m: int, b: int) -> str | None:
    """Why FLOAT<e,m,b> is unsupported, or None if it is fine.

    Every value of a supported minifloat is exactly a float64, which is what makes
    :meth:`DataType.allowed` exact; this bounds e, m and b.
    """
    if not 1 <= e <= 11:
        return f"exponent bits must be in 1..11, got {e}"
    if not 0 <= m <= 52:
        return f"mantissa bits must be in 0..52, got {m}"
    if (1 << e) - 1 - b > 1023:
        return f"bias {b} makes the largest value overflow float64"
    if 1 - b - m < -1074:
        return f"bias {b} makes the smallest subnormal underflow float64"
    return None


def _validate(kind: DataKind, params: tuple[int, ...]) -> str | None:
    """Why (kind, params) is not a valid datatype, or None if it is."""
    if not isinstance(params, tuple):
        return f"parameters must be a tuple, got {type(params).__name__}"
    if len(params) != _PARAM_COUNT.get(kind, 0):
        return f"{kind.value} takes {_PARAM_COUNT.get(kind, 0)} parameter(s), got {len(params)}"
    if any(type(p) is not int for p in params):
        return "parameters must be Python ints"
    if kind in (DataKind.INT, DataKind.UINT, DataKind.SCALEDINT):
        (bits,) = params
        if not 1 <= bits <= MAX_INT_BITS:
            return f"bit width must be in 1..{MAX_INT_BITS}, got {bits}"
    elif kind is DataKind.FIXED:
        w, i = params
        if not 1 <= w <= MAX_INT_BITS:
            return f"total bits must be in 1..{MAX_INT_BITS}, got {w}"
        if not 1 <= i <= w:
            return f"integer bits must be in 1..{w} (total bits), got {i}"
    elif kind is DataKind.MINIFLOAT:
        return _minifloat_problem(*params)
    return None


@dataclass(frozen=True, repr=False)
class DataType:
    """An immutable, hashable quantized datatype; build it with the constructors or :meth:`parse`.

    Two datatypes are equal exactly when their canonical names are equal (so e.g.
    ``UINT1`` and ``BINARY`` are different types with the same value set).
    """

    kind: DataKind
    params: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.kind, DataKind):
            raise InvalidDataTypeError(f"invalid datatype kind {_quote(self.kind)}")
        problem = _validate(self.kind, self.params)
        if problem is not None:
            raise InvalidDataTypeError(
                f"invalid datatype {self.kind.value}{list(self.params)}: {problem}"
            )

    # ------------------------------------------------------------------ constructors
    # (``int`` is defined last: a method of that name would shadow the builtin in
    # annotations written after it in this class body.)

    @classmethod
    def fixed(cls, total_bits: int, int_bits: int) -> DataType:
        """``FIXED<total_bits,int_bits>``: signed fixed point, int_bits include the sign."""
        return cls(DataKind.FIXED, (_as_int_param(total_bits), _as_int_param(int_bits)))

    @classmethod
    def scaled_int(cls, bits: int) -> DataType:
        """``SCALEDINT<bits>``: a signed integer times an unknown float scale."""
        return cls(DataKind.SCALEDINT, (_as_int_param(bits),))

    @classmethod
    def minifloat(
        cls, exponent_bits: int, mantissa_bits: int, bias: int | None = None
    ) -> DataType:
        """``FLOAT<e,m,b>``; ``bias`` defaults to ``2**(e-1) - 1``."""
        e = _as_int_param(exponent_bits)
        m = _as_int_param(mantissa_bits)
        if bias is None:
            if not 1 <= e <= 11:  # checked here too so 2**(e-1) is never huge
                raise InvalidDataTypeError(
                    f"invalid datatype FLOAT<{e},{m}>: exponent bits must be in 1..11, got {e}"
                )
            bias = (1 << (e - 1)) - 1
        return cls(DataKind.MINIFLOAT, (e, m, _as_int_param(bias)))

    @classmethod
    def parse(cls, text: str | bytes) -> DataType:
        """Parse a canonical datatype name (``INT4``, ``FIXED<8,3>``, ``FLOAT<4,3,7>``...).

        Case-sensitive; surrounding whitespace and spaces inside ``<...>`` are tolerated.
        ``bytes`` (as found in ONNX string attributes) are decoded as UTF-8.
        Raises :class:`~qonnx_tools.errors.InvalidDataTypeError` for anything else.
        """
        if isinstance(text, (bytes, bytearray)):
            try:
                text = bytes(text).decode("utf-8")
            except UnicodeDecodeError:
                raise InvalidDataTypeError(
                    f"invalid datatype {_quote(bytes(text))}: not UTF-8"
                ) from None
        if not isinstance(text, str):
            raise TypeError(f"datatype name must be str or bytes, not {type(text).__name__}")
        return _parse(text)

    def __class_getitem__(cls, text: str) -> DataType:  # type: ignore[override]
        """``DataType["INT4"]`` is ``DataType.parse("INT4")``."""
        return cls.parse(text)

    # ------------------------------------------------------------------ description

    @property
    def name(self) -> str:
        """The canonical qonnx/FINN spelling, e.g. ``INT4`` or ``FLOAT<4,3,7>``."""
        k, p = self.kind, self.params
        if k in (DataKind.INT, DataKind.UINT):
            return f"{k.value}{p[0]}"
        if k is DataKind.FIXED:
            return f"FIXED<{p[0]},{p[1]}>"
        if k is DataKind.SCALEDINT:
            return f"SCALEDINT<{p[0]}>"
        if k is DataKind.MINIFLOAT:
            return f"FLOAT<{p[0]},{p[1]},{p[2]}>"
        return k.value

    def __str__(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return f"DataType({self.name!r})"

    @property
    def bitwidth(self) -> int:
        """Number of bits of one value's encoding."""
        k, p = self.kind, self.params
        if k in (DataKind.INT, DataKind.UINT, DataKind.SCALEDINT, DataKind.FIXED):
            return p[0]
        if k in (DataKind.BIPOLAR, DataKind.BINARY):
            return 1
        if k is DataKind.TERNARY:
            return 2
        if k is DataKind.FLOAT32:
            return 32
        if k in (DataKind.FLOAT16, DataKind.BFLOAT16):
            return 16
        return 1 + p[0] + p[1]  # minifloat: sign + exponent + mantissa

    @property
    def signed(self) -> bool:
        """True if the value set contains negative numbers."""
        return self.kind not in (DataKind.UINT, DataKind.BINARY)

    @property
    def is_integer(self) -> bool:
        """True for INTn, UINTn, BIPOLAR, BINARY and TERNARY (integer-valued sets)."""
        return self.kind in _INTEGER_KINDS

    @property
    def is_fixed_point(self) -> bool:
        """True for FIXED<w,i>."""
        return self.kind is DataKind.FIXED

    @property
    def is_float(self) -> bool:
        """True for FLOAT32, FLOAT16, BFLOAT16 and minifloats FLOAT<e,m,b>."""
        return self.kind in _FLOAT_KINDS

    @property
    def min(self) -> int | float:
        """Smallest value: a Python int for integer types, a float otherwise (-inf for SCALEDINT)."""
        k, p = self.kind, self.params
        if k is DataKind.INT:
            return -(1 << (p[0] - 1))
        if k in (DataKind.UINT, DataKind.BINARY):
            return 0
        if k in (DataKind.BIPOLAR, DataKind.TERNARY):
            return -1
        if k is DataKind.FIXED:
            return -math.ldexp(1.0, p[1] - 1)
        if k is DataKind.SCALEDINT:
            return -math.inf
        return -self._float_max()

    @property
    def max(self) -> int | float:
        """Largest value: a Python int for integer types, a float otherwise (+inf for SCALEDINT)."""
        k, p = self.kind, self.params
        if k is DataKind.INT:
            return (1 << (p[0] - 1)) - 1
        if k is DataKind.UINT:
            return (1 << p[0]) - 1
        if k in (DataKind.BIPOLAR, DataKind.BINARY, DataKind.TERNARY):
            return 1
        if k is DataKind.FIXED:
            w, i = p
            # exact up to w = 53; wider FIXED maxima round to the nearest float64
            return math.ldexp((1 << (w - 1)) - 1, i - w)
        if k is DataKind.SCALEDINT:
            return math.inf
        return self._float_max()

    def _float_max(self) -> float:
        """Largest finite value of a float kind."""
        if self.kind is DataKind.MINIFLOAT:
            e, m, b = self.params
            # (2 - 2**-m) * 2**(2**e - 1 - b), as an exact integer significand
            return math.ldexp((1 << (m + 1)) - 1, (1 << e) - 1 - b - m)
        return float(ml_dtypes.finfo(_STANDARD_FLOAT_NUMPY[self.kind]).max)

    @property
    def step(self) -> int | float | None:
        """Distance between neighbouring values: 1 for integers, 2 for BIPOLAR,
        ``2**-(w-i)`` for FIXED, None where the spacing is not uniform (floats, SCALEDINT)."""
        k, p = self.kind, self.params
        if k is DataKind.BIPOLAR:
            return 2
        if k in _INTEGER_KINDS:
            return 1
        if k is DataKind.FIXED:
            return math.ldexp(1.0, p[1] - p[0])
        return None

    @property
    def int_bits(self) -> int | None:
        """FIXED<w,i>: the integer bits ``i`` (sign included); None for other kinds."""
        return self.params[1] if self.kind is DataKind.FIXED else None

    @property
    def frac_bits(self) -> int | None:
        """FIXED<w,i>: the fractional bits ``w - i``; None for other kinds."""
        return self.params[0] - self.params[1] if self.kind is DataKind.FIXED else None

    @property
    def exponent_bits(self) -> int | None:
        """Float kinds: number of exponent bits; None for other kinds."""
        layout = self._float_layout()
        return None if layout is None else layout[0]

    @property
    def mantissa_bits(self) -> int | None:
        """Float kinds: number of explicitly stored mantissa bits; None for other kinds."""
        layout = self._float_layout()
        return None if layout is None else layout[1]

    @property
    def exponent_bias(self) -> int | None:
        """Float kinds: the exponent bias; None for other kinds."""
        layout = self._float_layout()
        return None if layout is None else layout[2]

    def _float_layout(self) -> tuple[int, int, int] | None:
        if self.kind is DataKind.MINIFLOAT:
            e, m, b = self.params
            return e, m, b
        return _STANDARD_FLOAT_LAYOUT.get(self.kind)

    # ------------------------------------------------------------------ membership

    @overload
    def allowed(self, values: np.ndarray) -> npt.NDArray[np.bool_]: ...

    @overload
    def allowed(self, values: int | float | np.generic) -> bool: ...

    @overload
    def allowed(self, values: npt.ArrayLike) -> bool | npt.NDArray[np.bool_]: ...

    def allowed(self, values: npt.ArrayLike) -> bool | npt.NDArray[np.bool_]:
        """Whether each value belongs to this datatype's value set.

        Scalars (Python or numpy) give a ``bool``; arrays and sequences give a bool
        array of the same shape. NaN and +-inf are never allowed. Integer-dtype arrays
        and Python ints are checked exactly, so the INT64/UINT64 extremes are handled.
        """
        if isinstance(values, bool):
            values = int(values)
        if isinstance(values, int):
            return self._allowed_python_int(values)
        scalar = not isinstance(values, np.ndarray) and np.ndim(values) == 0
        result = self._allowed_array(np.asarray(values))
        return bool(result) if scalar else result

    def _allowed_python_int(self, value: int) -> bool:
        """Exact check of a Python int (which may exceed every numpy type)."""
        if self.is_integer:
            if self.kind is DataKind.BIPOLAR:
                return value in (-1, 1)
            lo, hi = self.min, self.max
            return bool(lo <= value <= hi)
        try:
            as_float = float(value)
        except OverflowError:
            return False
        if as_float != value:  # not exactly a float64: in no supported format
            return False
        return bool(self._allowed_array(np.asarray(as_float)))

    def _allowed_array(self, arr: np.ndarray) -> npt.NDArray[np.bool_]:
        """Vectorised membership test of a numpy array."""
        dtype = arr.dtype
        if dtype == np.bool_:
            arr = arr.astype(np.uint8)
            dtype = arr.dtype
        elif _is_ml_int(dtype):  # ml_dtypes int4/uint4/...: widen losslessly
            arr = arr.astype(np.int64)
            dtype = arr.dtype
        if dtype.kind in "iu":
            if self.is_integer and self.kind is not DataKind.BIPOLAR:
                return _int_array_in_range(arr, int(self.min), int(self.max))
            if dtype.itemsize > 4:  # int64 values beyond 2**53 are not all float64
                as_float = arr.astype(np.float64)
                exact = _int_array_equals_float(arr, as_float)
                return exact & self._allowed_float64(as_float)
            return self._allowed_float64(arr.astype(np.float64))
        if dtype.kind == "f" or _is_ml_float(dtype):
            if dtype.kind == "f" and dtype.itemsize > 8:  # long double
                finite = np.isfinite(arr)
                with np.errstate(over="ignore", invalid="ignore"):
                    as_float = arr.astype(np.float64)
                    exact = as_float == arr
                if self.kind is DataKind.SCALEDINT:
                    return finite
                return finite & exact & self._allowed_float64(as_float)
            return self._allowed_float64(arr.astype(np.float64))
        raise TypeError(f"allowed() needs numeric values, got array of dtype {dtype}")

    def _allowed_float64(self, x: npt.NDArray[np.float64]) -> npt.NDArray[np.bool_]:
        """Membership test on float64 values (non-finite values are rejected)."""
        finite = np.isfinite(x)
        x = np.where(finite, x, 0.0)  # keep NaN/inf out of the arithmetic below
        k = self.kind
        if k is DataKind.SCALEDINT:
            return finite
        if k is DataKind.BIPOLAR:
            return finite & ((x == -1.0) | (x == 1.0))
        if k in _INTEGER_KINDS:
            # upper bound as max + 1 (a power of two or 2), exact in float64 even for 64 bits
            lo, hi_excl = float(self.min), float(int(self.max) + 1)
            return finite & (x == np.floor(x)) & (x >= lo) & (x < hi_excl)
        if k is DataKind.FIXED:
            w, i = self.params
            with np.errstate(over="ignore"):  # huge values become inf and fail the range test
                scaled = np.ldexp(x, w - i)  # exact: multiplication by a power of two
            bound = math.ldexp(1.0, w - 1)
            return finite & (scaled == np.floor(scaled)) & (scaled >= -bound) & (scaled < bound)
        if k is DataKind.MINIFLOAT:
            return finite & self._minifloat_members(x)
        with np.errstate(over="ignore"):
            roundtrip = x.astype(_STANDARD_FLOAT_NUMPY[k]).astype(np.float64)
        return finite & (roundtrip == x)

    def _minifloat_members(self, x: npt.NDArray[np.float64]) -> npt.NDArray[np.bool_]:
        """Exact representability of finite float64 values in FLOAT<e,m,b>."""
        _, m, b = self.params
        in_range = np.abs(x) <= self._float_max()
        _, exp2 = np.frexp(x)  # x = f * 2**exp2 with 0.5 <= |f| < 1
        exponent = exp2.astype(np.int64) - 1  # x = 1.f * 2**exponent
        # weight of the last mantissa bit; subnormals share the smallest normal exponent
        lsb = np.maximum(exponent, 1 - b) - m
        # below the smallest positive value the scaling could underflow and round
        not_too_small = (x == 0) | (np.abs(x) >= math.ldexp(1.0, 1 - b - m))
        units = np.ldexp(x, (-lsb).astype(np.int32))  # otherwise exact power-of-two scaling
        return in_range & not_too_small & (units == np.floor(units))

    @classmethod
    def int(cls, bits: int, signed: bool = True) -> DataType:
        """``INT<bits>`` (signed) or ``UINT<bits>``, bits in 1..64."""
        return cls(DataKind.INT if signed else DataKind.UINT, (_as_int_param(bits),))


def _as_int_param(value: Any) -> int:
    """A constructor argument as a Python int (numpy ints accepted, bools and floats not)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise InvalidDataTypeError(f"invalid datatype parameter {_quote(value)}: not an integer")
    return int(value)


def _is_ml_float(dtype: np.dtype) -> bool:
    """True for ml_dtypes float types (bfloat16, float8...), which numpy reports as kind 'V'."""
    try:
        ml_dtypes.finfo(dtype)
    except (TypeError, ValueError):
        return False
    return dtype.kind == "V"


def _is_ml_int(dtype: np.dtype) -> bool:
    """True for ml_dtypes integer types (int4, uint4, ...), which numpy reports as kind 'V'."""
    if dtype.kind != "V":
        return False
    try:
        ml_dtypes.iinfo(dtype)
    except (TypeError, ValueError):
        return False
    return True


def _int_array_in_range(arr: np.ndarray, lo: int, hi: int) -> npt.NDArray[np.bool_]:
    """lo <= arr <= hi for an integer array, without overflow or mixed-sign surprises."""
    info = np.iinfo(arr.dtype)
    if lo > info.max or hi < info.min:
        return np.zeros(arr.shape, dtype=bool)
    result = np.ones(arr.shape, dtype=bool)
    if lo > info.min:
        result &= arr >= arr.dtype.type(lo)
    if hi < info.max:
        result &= arr <= arr.dtype.type(hi)
    return result


def _int_array_equals_float(arr: np.ndarray, as_float: np.ndarray) -> npt.NDArray[np.bool_]:
    """Whether each 64-bit integer equals its float64 conversion exactly."""
    info = np.iinfo(arr.dtype)
    # float64 values in [-2**63, 2**63) (resp. [0, 2**64)) convert back without overflow
    safe = as_float < math.ldexp(1.0, info.bits - (1 if info.min < 0 else 0))
    back = np.where(safe, as_float, 0.0).astype(arr.dtype)
    return safe & (back == arr)


# ---------------------------------------------------------------------- parsing

_NUM = r"\s*(0|[1-9][0-9]*)\s*"
_SNUM = r"\s*(0|-?[1-9][0-9]*)\s*"
_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"INT(0|[1-9][0-9]*)"), "int"),
    (re.compile(r"UINT(0|[1-9][0-9]*)"), "uint"),
    (re.compile(rf"FIXED<{_NUM},{_NUM}>"), "fixed"),
    (re.compile(rf"SCALEDINT<{_NUM}>"), "scaledint"),
    (re.compile(rf"FLOAT<{_NUM},{_NUM}(?:,{_SNUM})?>"), "minifloat"),
]
_NAMED: dict[str, DataKind] = {
    "BIPOLAR": DataKind.BIPOLAR,
    "BINARY": DataKind.BINARY,
    "TERNARY": DataKind.TERNARY,
    "FLOAT32": DataKind.FLOAT32,
    "FLOAT16": DataKind.FLOAT16,
    "BFLOAT16": DataKind.BFLOAT16,
}
#: Parameters this long cannot be valid and would only cost time to convert.
_MAX_DIGITS = 6


def _parse(text: str) -> DataType:
    stripped = text.strip()
    if stripped in _NAMED:
        return DataType(_NAMED[stripped])
    for pattern, family in _PATTERNS:
        match = pattern.fullmatch(stripped)
        if match is None:
            continue
        groups = [g for g in match.groups() if g is not None]
        if any(len(g) > _MAX_DIGITS for g in groups):
            raise InvalidDataTypeError(f"invalid datatype {_quote(text)}: parameter out of range")
        nums = [int(g) for g in groups]
        try:
            if family == "int":
                return DataType.int(nums[0], signed=True)
            if family == "uint":
                return DataType.int(nums[0], signed=False)
            if family == "fixed":
                return DataType.fixed(nums[0], nums[1])
            if family == "scaledint":
                return DataType.scaled_int(nums[0])
            return DataType.minifloat(*nums)
        except InvalidDataTypeError as err:
            reason = str(err).split(": ", 1)[-1]
            raise InvalidDataTypeError(f"invalid datatype {_quote(text)}: {reason}") from None
    raise InvalidDataTypeError(f"invalid datatype {_quote(text)}: unknown datatype name")


# ---------------------------------------------------------------------- constants

FLOAT32 = DataType(DataKind.FLOAT32)
FLOAT16 = DataType(DataKind.FLOAT16)
BFLOAT16 = DataType(DataKind.BFLOAT16)
BIPOLAR = DataType(DataKind.BIPOLAR)
BINARY = DataType(DataKind.BINARY)
TERNARY = DataType(DataKind.TERNARY)


# ---------------------------------------------------------------------- helpers


def _as_integral(value: Any, what: str) -> int:
    """An integral number (int, numpy int, or integer-valued finite float) as a Python int."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
        return int(value)
    if isinstance(value, (float, np.floating)) and math.isfinite(value):
        if float(value).is_integer():
            return int(value)
    raise ValueError(f"{what} must be an integer, got {_quote(value)}")


def smallest_int_type(min_value: int | float, max_value: int | float) -> DataType:
    """The narrowest INTn/UINTn holding every integer in [min_value, max_value].

    Unsigned when ``min_value >= 0``. Used to infer accumulator types. Raises
    ``ValueError`` for non-integral bounds or ``min_value > max_value`` and
    :class:`~qonnx_tools.errors.InvalidDataTypeError` when more than 64 bits are needed.
    """
    lo = _as_integral(min_value, "min_value")
    hi = _as_integral(max_value, "max_value")
    if lo > hi:
        raise ValueError(f"min_value {lo} is greater than max_value {hi}")
    if lo >= 0:
        bits = max(1, hi.bit_length())
        signed = False
    else:
        # n bits hold -2**(n-1) .. 2**(n-1) - 1
        bits = max((-lo - 1).bit_length() + 1, hi.bit_length() + 1 if hi >= 0 else 1)
        signed = True
    if bits > MAX_INT_BITS:
        raise InvalidDataTypeError(
            f"no {MAX_INT_BITS}-bit or narrower integer datatype holds [{lo}, {hi}]"
        )
    return DataType.int(bits, signed=signed)


def numpy_container(dt: DataType) -> np.dtype:
    """The smallest standard numpy dtype that stores the values of ``dt``.

    Integer kinds get int8..int64 / uint8..uint64 (BIPOLAR and TERNARY int8, BINARY
    uint8). FIXED<w,i> and SCALEDINT<n> get float32 up to 24 bits (float32's
    significand), float64 beyond; above 53 bits float64 is the widest available and
    no longer exact. FLOAT32/FLOAT16 map to themselves; BFLOAT16 to float32, since
    bfloat16 is not a standard numpy type. Minifloats get float32 when their
    mantissa and exponent range fit in float32 (e.g. FLOAT<4,3,7>), float64 otherwise.
    """
    k, p = dt.kind, dt.params
    if k in (DataKind.INT, DataKind.UINT):
        bits = next(b for b in (8, 16, 32, 64) if p[0] <= b)
        return np.dtype(f"{'int' if k is DataKind.INT else 'uint'}{bits}")
    if k in (DataKind.BIPOLAR, DataKind.TERNARY):
        return np.dtype(np.int8)
    if k is DataKind.BINARY:
        return np.dtype(np.uint8)
    if k in (DataKind.FIXED, DataKind.SCALEDINT):
        return np.dtype(np.float32 if p[0] <= 24 else np.float64)
    if k is DataKind.FLOAT16:
        return np.dtype(np.float16)
    if k in (DataKind.FLOAT32, DataKind.BFLOAT16):
        return np.dtype(np.float32)
    e, m, b = p
    # float32: 23 mantissa bits, largest exponent 127, smallest subnormal 2**-149
    fits = m <= 23 and (1 << e) - 1 - b <= 127 and 1 - b - m >= -149
    return np.dtype(np.float32 if fits else np.float64)
