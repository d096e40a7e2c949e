"""Reading constant tensors (initializers and Constant-node outputs) as NumPy arrays."""

from __future__ import annotations

import numpy as np

from qonnx_tools._ir import ir
from qonnx_tools.executor.attributes import decode_attribute

_CONSTANT_VALUE_ATTRS = (
    "value", "value_float", "value_floats", "value_int", "value_ints", "value_string", "value_strings",
)


def constant_array(value: ir.Value | None, *, overridable: bool = True) -> np.ndarray | None:
    """The constant value of ``value`` as an array, or None when it is computed at run time.

    Covers initializers and outputs of ``Constant`` nodes. Exporters such as Brevitas
    also list initializers as graph inputs; ONNX lets a caller override those, but
    they are the model's weights, so they count as constants unless ``overridable``
    is False.
    """
    if value is None:
        return None
    if value.const_value is not None and (overridable or not value.is_graph_input()):
        return np.asarray(value.const_value.numpy())
    producer = value.producer()
    if producer is not None and producer.op_type == "Constant" and producer.domain in ("", "ai.onnx"):
        for key in _CONSTANT_VALUE_ATTRS:
            attr = producer.attributes.get(key)
            if attr is not None:
                decoded = decode_attribute(attr, f"node {producer.name!r} (Constant)")
                return np.asarray(decoded)
    return None


def constant_scalar(value: ir.Value | None) -> float | None:
    """The one number a constant of a single element holds (any shape), or None."""
    array = constant_array(value)
    return None if array is None or array.size != 1 else float(array.reshape(-1)[0])


def is_power_of_two(array: np.ndarray) -> bool:
    """Whether every element of ``array`` is a (positive or negative) power of two."""
    with np.errstate(divide="ignore"):
        exponent = np.log2(np.abs(np.asarray(array, dtype=np.float64)))
    return bool(np.all(np.isfinite(exponent)) and np.all(exponent == np.round(exponent)))
