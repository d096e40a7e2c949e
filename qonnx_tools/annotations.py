"""Quantized-datatype annotations, stored where qonnx and FINN keep them.

A tensor's datatype lives in the graph's ``quantization_annotation`` list as the
entry ``finn_datatype`` (e.g. ``INT4``), so files written here stay readable by
qonnx and FINN. onnx_ir keeps those entries in ``value.meta``.

Names are written as qonnx 1.0 writes them: qonnx reads ``UINT1`` as its ``BINARY``
(the same set, {0, 1}) and names it ``BINARY``, so ``UINT1`` is written ``BINARY``.
The other names the passes write (INTn, UINTn, BIPOLAR, TERNARY, FIXED, SCALEDINT,
FLOAT32, FLOAT<e,m,b>) are qonnx's own spellings; qonnx 1.0 has no BFLOAT16.
"""

from __future__ import annotations

from qonnx_tools._ir import QUANT_ANNOTATION_KEY, ir
from qonnx_tools.datatypes import BINARY, DataType

DATATYPE_KEY = "finn_datatype"

#: Datatypes qonnx 1.0 knows under another (canonical) name for the same value set.
_QONNX_NAMES = {DataType.int(1, signed=False): BINARY}


def get_datatype(value: ir.Value) -> DataType | None:
    """The annotated quantized datatype of ``value``, or None when there is none."""
    entries = value.meta.get(QUANT_ANNOTATION_KEY) or {}
    text = entries.get(DATATYPE_KEY)
    return DataType.parse(text) if text else None


def set_datatype(value: ir.Value, datatype: DataType | None) -> bool:
    """Annotate (or, with None, un-annotate) ``value`` (qonnx's name for the set); True when that changed anything."""
    entries = dict(value.meta.get(QUANT_ANNOTATION_KEY) or {})
    before = entries.get(DATATYPE_KEY)
    if datatype is None:
        entries.pop(DATATYPE_KEY, None)
    else:
        entries[DATATYPE_KEY] = str(_QONNX_NAMES.get(datatype, datatype))
    if entries.get(DATATYPE_KEY) == before:
        return False
    if entries:
        value.meta[QUANT_ANNOTATION_KEY] = entries
    else:
        value.meta.pop(QUANT_ANNOTATION_KEY, None)
    return True
