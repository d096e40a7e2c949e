"""pad-attrs-to-inputs: attribute forms that the model's opset no longer has become inputs.

Hand-edited graphs (and old exporters re-stamped with a newer opset) carry
attributes that moved to inputs in later ONNX versions; at the newer opset they
are invalid and onnx/onnxruntime reject the node. This pass rewrites them to
the input form, each as a new initializer named ``<node name>_<attribute>``:

==========================  =====  ===============================================
op                          opset  attributes -> inputs
==========================  =====  ===============================================
Pad                         >= 11  pads (``paddings`` in Pad-1) -> pads, value -> constant_value
Clip                        >= 11  min -> min, max -> max
Slice                       >= 10  starts, ends, axes -> inputs 1, 2, 3
TopK                        >= 10  k -> K
Split                       >= 13  split -> split
Squeeze, Unsqueeze          >= 13  axes -> axes
ReduceSum                   >= 13  axes -> axes
other Reduce* ops           >= 18  axes -> axes
==========================  =====  ===============================================

Index inputs are int64; ``value``/``min``/``max`` take the data input's element
type (float32 when it is unknown: these ops only took float types in their
attribute form). A zero Pad ``value`` needs no input. When the input is already
there the stale attribute is simply dropped (the input is what the opset reads).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from qonnx_tools._ir import ir
from qonnx_tools.domains import STANDARD, canonical_domain, opset_of
from qonnx_tools.passes._rewrite import all_value_names, unique_name
from qonnx_tools.passes.base import PassResult, QonnxPass

INT64 = "int64"
DATA = "data"  # element type of input 0
SCALAR, VECTOR = "scalar", "vector"

#: op -> (first opset without the attribute form, [(attribute names, input index, element type, layout)])
_RULES: dict[str, tuple[int, list[tuple[tuple[str, ...], int, str, str]]]] = {
    "Pad": (11, [(("pads", "paddings"), 1, INT64, VECTOR), (("value",), 2, DATA, SCALAR)]),
    "Clip": (11, [(("min",), 1, DATA, SCALAR), (("max",), 2, DATA, SCALAR)]),
    "Slice": (10, [(("starts",), 1, INT64, VECTOR), (("ends",), 2, INT64, VECTOR), (("axes",), 3, INT64, VECTOR)]),
    "TopK": (10, [(("k",), 1, INT64, VECTOR)]),
    "Split": (13, [(("split",), 1, INT64, VECTOR)]),
    "Squeeze": (13, [(("axes",), 1, INT64, VECTOR)]),
    "Unsqueeze": (13, [(("axes",), 1, INT64, VECTOR)]),
    "ReduceSum": (13, [(("axes",), 1, INT64, VECTOR)]),
}
for _reduce in ("Max", "Min", "Mean", "Prod", "SumSquare", "L1", "L2", "LogSum", "LogSumExp"):
    _RULES[f"Reduce{_reduce}"] = (18, [(("axes",), 1, INT64, VECTOR)])


@dataclass
class PadAttrsToInputs(QonnxPass, name="pad-attrs-to-inputs"):
    """turn attributes that are inputs at the model's opset (Pad pads/value, Clip min/max, Slice, TopK k, Split
    split, Squeeze/Unsqueeze/Reduce* axes) into initializer inputs"""

    def call(self, model: ir.Model) -> PassResult:
        opset = opset_of(model, STANDARD, 1)
        used: set[str] | None = None
        modified = False
        for node in list(ir.traversal.RecursiveGraphIterator(model.graph)):
            rule = _RULES.get(node.op_type)
            if rule is None or canonical_domain(node.domain) != STANDARD or opset < rule[0]:
                continue
            if not isinstance(node.graph, ir.Graph):
                continue
            for names, index, kind, layout in rule[1]:
                key = next((n for n in names if n in node.attributes), None)
                if key is None:
                    continue
                attr = node.attributes.pop(key)
                modified = True
                if index < len(node.inputs) and node.inputs[index] is not None:
                    continue  # the input form is there already; the attribute was stale
                array = _as_array(node, attr.value, kind, layout)
                if node.op_type == "Pad" and key == "value" and not np.any(array):
                    continue  # constant_value defaults to zero
                if used is None:
                    used = all_value_names(model)
                name = unique_name(f"{node.name or node.op_type}_{key}", used)
                value = ir.Value(
                    name=name,
                    shape=ir.Shape(array.shape),
                    type=ir.TensorType(ir.DataType.from_numpy(array.dtype)),
                    const_value=ir.Tensor(array, name=name),
                )
                node.graph.register_initializer(value)
                if index >= len(node.inputs):
                    node.resize_inputs(index + 1)
                node.replace_input_with(index, value)
        return PassResult(model, modified)


def _as_array(node: ir.Node, raw: Any, kind: str, layout: str) -> np.ndarray:
    if kind == INT64:
        dtype = np.dtype(np.int64)
    else:
        data = node.inputs[0] if node.inputs else None
        dtype = np.dtype(data.dtype.numpy()) if data is not None and data.dtype is not None else np.dtype(np.float32)
    values = np.asarray(raw, dtype=dtype)
    return values.reshape(-1) if layout == VECTOR else values.reshape(())
