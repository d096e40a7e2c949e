"""Running models in onnxruntime, and random inputs that respect a model's declarations.

onnxruntime is our independent reference for standard ops. Its graph
optimisations are not neutral for quantized graphs (e.g. the
WeightBiasQuantization rewrite rounds float biases of QDQ Conv/Gemm to int32),
so the reference run uses ORT_DISABLE_ALL; the optimised run is reported
separately where it matters.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from qonnx_tools._ir import ir
from qonnx_tools.annotations import get_datatype
from qonnx_tools.domains import STANDARD
from qonnx_tools.errors import BadInputError, ExecutionError, first_line

#: Range used for random float inputs when the model declares no datatype.
DEFAULT_FLOAT_RANGE = (-1.0, 1.0)


def only_standard_ops(model: ir.Model) -> bool:
    """True when every node is an ai.onnx op (so onnxruntime can run the model)."""
    return all(node.domain == STANDARD for node in ir.traversal.RecursiveGraphIterator(model.graph))


def ort_session(proto, *, optimize: bool = False):
    """An onnxruntime CPU session for ``proto`` (an ``ir.Model`` or ModelProto), graph optimisations
    off unless ``optimize`` (off is the exact reference); ExecutionError when onnxruntime refuses it."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = (
        ort.GraphOptimizationLevel.ORT_ENABLE_ALL if optimize else ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    )
    options.log_severity_level = 3
    try:
        if isinstance(proto, ir.Model):
            proto = ir.to_proto(proto)
        return ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise ExecutionError(f"onnxruntime cannot load the model: {first_line(exc)}") from exc


def run_onnxruntime(
    model: ir.Model,
    inputs: Mapping[str, np.ndarray],
    *,
    optimize: bool = False,
    extra_outputs: Sequence[str] = (),
) -> dict[str, np.ndarray]:
    """Outputs of ``model`` in onnxruntime's CPU provider, by output name.

    ``extra_outputs`` names intermediate tensors to return as well (for per-layer
    comparisons); they are added as graph outputs of a serialised copy.
    """
    proto = ir.to_proto(model)
    existing = {o.name for o in proto.graph.output}
    types = {v.name: v.type for v in proto.graph.value_info}
    for name in extra_outputs:
        if name not in existing:
            info = proto.graph.output.add(name=name)
            if name in types:
                info.type.CopyFrom(types[name])
    session = ort_session(proto, optimize=optimize)
    try:
        feeds = {i.name: np.asarray(inputs[i.name]) for i in session.get_inputs() if i.name in inputs}
        names = [o.name for o in session.get_outputs()]
        return dict(zip(names, session.run(names, feeds)))
    except Exception as exc:
        raise ExecutionError(f"onnxruntime could not run the model: {first_line(exc)}") from exc




def random_inputs(model: ir.Model, *, seed: int = 0, batch: int | None = None) -> dict[str, np.ndarray]:
    """Seeded random arrays for every non-initializer graph input.

    Symbolic dimensions take ``batch`` (default 1). Values follow the input's
    datatype annotation when there is one (e.g. UINT8 -> integers 0..255), else
    DEFAULT_FLOAT_RANGE for floats and 0..9 for integers.
    """
    rng = np.random.default_rng(seed)
    result: dict[str, np.ndarray] = {}
    initialized = set(model.graph.initializers)
    for value in model.graph.inputs:
        if value.name in initialized:
            continue
        if value.shape is None or value.dtype is None:
            raise BadInputError(f"input {value.name!r} has no declared shape/type; give inputs explicitly")
        shape = tuple(d if isinstance(d, int) else (batch or 1) for d in value.shape)
        if batch is not None and shape:
            shape = (batch,) + shape[1:]
        result[value.name] = _random_array(rng, shape, np.dtype(value.dtype.numpy()), get_datatype(value))
    return result


def _random_array(rng: np.random.Generator, shape: tuple[int, ...], dtype: np.dtype, datatype) -> np.ndarray:
    if datatype is not None and datatype.is_integer:
        low, high = int(datatype.min), int(datatype.max)
        values = rng.integers(low, high + 1, size=shape)
        if datatype.name == "BIPOLAR":
            values = np.where(values > 0, 1, -1)
        return values.astype(dtype)
    if dtype.kind == "f":
        low, high = DEFAULT_FLOAT_RANGE
        # a fixed-point annotation bounds the values; float annotations (FLOAT32...) do not narrow the default range
        if datatype is not None and datatype.is_fixed_point:
            low, high = float(datatype.min), float(datatype.max)
        return rng.uniform(low, high, size=shape).astype(dtype)
    if dtype.kind == "b":
        return rng.integers(0, 2, size=shape).astype(bool)
    return rng.integers(0, 10, size=shape).astype(dtype)
