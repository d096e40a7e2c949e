"""Run qonnx's ``InferShapes`` and ``InferDataTypes`` on each model file given; print one JSON line per file.

Runs in a separate Python environment that has qonnx 1.0 (never in the project's own):
tests/consumers/test_qonnx_datatypes_consumer.py calls it with that interpreter on our
``streamline`` outputs.

Steps, as a FINN user would write them: ``ModelWrapper(path)``, every annotation read with
qonnx's ``DataType[...]`` (a name qonnx cannot parse is reported, not raised),
``model.transform(InferShapes())``, ``model.transform(InferDataTypes())``
(``qonnx.transformation.infer_datatypes``, default arguments).

For model ``M.onnx``, when ``M.values.npz`` exists (tensor name -> array, written by the test),
each tensor annotated after qonnx's pass is checked with qonnx's own ``DataType.allowed``.

Each line: ``file``, ``ok`` (or ``error``), ``unparsed`` (tensor -> annotation qonnx cannot read),
``before``/``after`` (tensor -> qonnx canonical name of its datatype, every annotated tensor),
``nodes``: for every MatMul/Conv, ``name``, ``op`` and ``inputs``/``outputs`` as lists of
``{"name", "datatype", "integer", "initializer"}`` with the datatype qonnx reads after its pass,
``outside``: tensor -> ``{"datatype", "count", "elements", "example"}`` for the values
the annotated type does not allow, and ``checked``: how many annotated tensors had values.
"""

import os
import sys

from _script import report_each


def _annotations(model) -> dict:
    return {
        entry.tensor_name: kv.value
        for entry in model.graph.quantization_annotation
        for kv in entry.quant_parameter_tensor_names
        if kv.key == "finn_datatype"
    }


def run(path: str) -> dict:
    import numpy as np
    from qonnx.core.datatype import DataType
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.transformation.infer_datatypes import InferDataTypes
    from qonnx.transformation.infer_shapes import InferShapes

    model = ModelWrapper(path)
    unparsed, before = {}, {}
    for name, text in _annotations(model).items():
        try:
            before[name] = DataType[text].get_canonical_name()
        except Exception as exc:
            unparsed[name] = f"{text}: {type(exc).__name__}: {exc}"
    if unparsed:
        return {"unparsed": unparsed, "before": before, "after": {}, "nodes": [], "outside": {}, "checked": 0}
    model = model.transform(InferShapes())
    model = model.transform(InferDataTypes())
    after = {name: DataType[text].get_canonical_name() for name, text in _annotations(model).items()}

    def describe(name):
        datatype = model.get_tensor_datatype(name)
        return {"name": name, "datatype": datatype.get_canonical_name(), "integer": bool(datatype.is_integer()),
                "initializer": model.get_initializer(name) is not None}

    nodes = [
        {"name": node.name, "op": node.op_type,
         "inputs": [describe(i) for i in node.input if i], "outputs": [describe(o) for o in node.output]}
        for node in model.graph.node
        if node.op_type in ("MatMul", "Conv")
    ]
    outside, checked = {}, 0
    stem = path[: -len(".onnx")] if path.endswith(".onnx") else path
    if os.path.exists(stem + ".values.npz"):
        values = dict(np.load(stem + ".values.npz"))
        for name in after:
            array = values.get(name)
            if array is None:
                array = model.get_initializer(name)
            if array is None:
                continue
            checked += 1
            datatype = model.get_tensor_datatype(name)
            allowed = np.asarray(datatype.allowed(array), dtype=bool)
            if not allowed.all():
                bad = np.asarray(array)[~allowed]
                outside[name] = {"datatype": datatype.get_canonical_name(), "count": int(bad.size),
                                 "elements": int(np.asarray(array).size), "example": float(bad.reshape(-1)[0])}
    return {"unparsed": unparsed, "before": before, "after": after, "nodes": nodes, "outside": outside,
            "checked": checked}


if __name__ == "__main__":
    sys.exit(report_each(sys.argv[1:], run))
