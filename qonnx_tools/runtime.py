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


#: onnxruntime optimisation profiles by name:
#:
#: * ``off``: ``ORT_DISABLE_ALL``; the graph computes in float exactly as written (the exact reference);
#: * ``optimized``: every optimisation (``ORT_ENABLE_ALL``: QDQ groups fused into integer kernels that
#:   requantize in fixed point) except ``WeightBiasQuantization``, which rounds float biases of QDQ
#:   Conv/Gemm to int32 at input*weight scale and moves outputs by several steps;
#: * ``default``: what a user gets without options (``WeightBiasQuantization`` included).
#:
#: To run as ``optimized`` yourself: ``InferenceSession(path, so,
#: disabled_optimizers=["WeightBiasQuantization"])``.
ORT_PROFILES = ("off", "optimized", "default")
ORT_DISABLED_WHEN_OPTIMIZED = ("WeightBiasQuantization",)


def ort_session(proto, *, optimize: bool | str = False, optimized_model_path: str | None = None):
    """An onnxruntime CPU session for ``proto`` (an ``ir.Model``, ModelProto or file path).

    ``optimize``: a profile of ``ORT_PROFILES`` (False = ``off``, True = ``default``); off is
    the exact reference. ``optimized_model_path``: where onnxruntime writes the graph it runs.
    ExecutionError when onnxruntime refuses the model."""
    import onnxruntime as ort

    profile = ("default" if optimize else "off") if isinstance(optimize, bool) else optimize
    if profile not in ORT_PROFILES:
        raise BadInputError(f"onnxruntime profile {profile!r}: choose from {', '.join(ORT_PROFILES)}")
    options = ort.SessionOptions()
    options.graph_optimization_level = (
        ort.GraphOptimizationLevel.ORT_DISABLE_ALL if profile == "off" else ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    )
    options.log_severity_level = 3
    if optimized_model_path:
        options.optimized_model_filepath = str(optimized_model_path)
    disabled = list(ORT_DISABLED_WHEN_OPTIMIZED) if profile == "optimized" else []
    try:
        if isinstance(proto, ir.Model):
            proto = ir.to_proto(proto)
        source = proto if isinstance(proto, str) else proto.SerializeToString()
        return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"],
                                    disabled_optimizers=disabled)
    except Exception as exc:
        raise ExecutionError(f"onnxruntime cannot load the model: {first_line(exc)}") from exc


_SATURATION_PROBE: list[bool] = []


def ort_u8s8_saturates() -> bool:
    """Whether onnxruntime's u8 x s8 integer kernels saturate on this CPU (measured once, cached).

    x86 CPUs without VNNI multiply u8 by s8 with an instruction that adds pairs of products
    into int16 with saturation: MatMulInteger of 64 x (255 * 127) then gives 1048544 (32 x 32767),
    not 2072640. Fused QLinearConv/QGemm of full-range 8-bit weights inherit that."""
    if not _SATURATION_PROBE:
        from onnx import TensorProto, helper

        graph = helper.make_graph(
            [helper.make_node("MatMulInteger", ["a", "b"], ["y"])], "probe",
            [helper.make_tensor_value_info("a", TensorProto.UINT8, [1, 64]),
             helper.make_tensor_value_info("b", TensorProto.INT8, [64, 1])],
            [helper.make_tensor_value_info("y", TensorProto.INT32, [1, 1])])
        session = ort_session(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]))
        got = session.run(None, {"a": np.full((1, 64), 255, np.uint8), "b": np.full((64, 1), 127, np.int8)})[0]
        _SATURATION_PROBE.append(int(got.reshape(-1)[0]) != 64 * 255 * 127)
    return _SATURATION_PROBE[0]


def run_onnxruntime(
    model: ir.Model,
    inputs: Mapping[str, np.ndarray],
    *,
    optimize: bool | str = False,
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
