"""Locating the shared corpus of real models (tests and benchmarks).

The corpus lives in ``../shared/models`` beside the project checkout (or where
``QONNX_TOOLS_SHARED`` points). A user's fresh clone does not have it: callers
get an empty list / None and skip.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

_PROJECT_ROOT = Path(__file__).resolve().parents[1]


def shared_dir() -> Path | None:
    """The shared folder (with models/, seeds/, reference/), or None when absent."""
    env = os.environ.get("QONNX_TOOLS_SHARED")
    candidate = Path(env) if env else _PROJECT_ROOT.parent / "shared"
    return candidate if (candidate / "models").is_dir() else None


def shared_models(pattern: str = "**/*.onnx") -> list[Path]:
    """Model files of the shared corpus matching ``pattern`` (sorted), or [] when absent."""
    root = shared_dir()
    if root is None:
        return []
    return sorted(p for p in (root / "models").glob(pattern) if p.is_file())


def brevitas_models() -> list[Path]:
    """The shared Brevitas corpus folders (each with qonnx.onnx/qcdq.onnx/io.npz...)."""
    root = shared_dir()
    if root is None:
        return []
    return sorted(p for p in (root / "models" / "brevitas").iterdir() if p.is_dir())


# -- shared test helpers ------------------------------------------------------------------
# Imports are local so that importing this module (for the corpus locators above) stays cheap.

BREVITAS_CORPUS_FILES = ("qonnx.onnx", "qcdq.onnx")
TIE_SENSITIVE = frozenset({"imagenet_mobilenet_v1_4b"})
"""Corpus model whose 4-bit activations sit on quantizer ties: float reassociation may flip them."""


def brevitas_corpus() -> list[Path]:
    """The qonnx.onnx and qcdq.onnx files of every shared Brevitas model (or [] when absent)."""
    return [p for d in brevitas_models() for p in (d / name for name in BREVITAS_CORPUS_FILES) if p.exists()]


def make_proto(
    nodes: Sequence[Any],
    inputs: Sequence[tuple[str, int, Any]],
    outputs: Sequence[tuple[str, int, Any]],
    inits: Iterable[tuple[str, Any]] = (),
    opset: int = 13,
    *,
    extra_inputs: Iterable[Any] = (),
    value_info: Iterable[Any] = (),
    extra_opsets: Mapping[str, int] | None = None,
) -> Any:
    """A small ``onnx.ModelProto`` (IR version 8) from nodes, (name, elem_type, shape) triples and
    (name, array) initializers; ``extra_opsets`` adds domain -> version imports."""
    import numpy as np
    from onnx import helper, numpy_helper

    graph = helper.make_graph(
        list(nodes),
        "g",
        [helper.make_tensor_value_info(n, t, s) for n, t, s in inputs] + list(extra_inputs),
        [helper.make_tensor_value_info(n, t, s) for n, t, s in outputs],
        initializer=[numpy_helper.from_array(np.asarray(a), n) for n, a in inits],
        value_info=list(value_info),
    )
    opsets = [helper.make_opsetid("", opset)]
    opsets += [helper.make_opsetid(domain, version) for domain, version in (extra_opsets or {}).items()]
    proto = helper.make_model(graph, opset_imports=opsets)
    proto.ir_version = 8
    return proto


def make_model(*args: Any, **kwargs: Any) -> Any:
    """``make_proto`` converted to the IR (same arguments)."""
    from qonnx_tools._ir import ir

    return ir.from_proto(make_proto(*args, **kwargs))


def prepare_corpus_model(path: Path, *, infer_shapes: bool = False) -> Any:
    """Load a corpus model and run remove-static-inputs (Brevitas lists weights as graph inputs),
    then infer-shapes when ``infer_shapes``."""
    from qonnx_tools import model_io
    from qonnx_tools.passes import make_pass

    model = model_io.load(path)
    make_pass("remove-static-inputs")(model)
    if infer_shapes:
        make_pass("infer-shapes")(model)
    return model


def corpus_input(path: Path) -> Any:
    """The recorded input array (``io.npz``) beside a Brevitas corpus model."""
    import numpy as np

    return np.load(path.parent / "io.npz")["input"]


def run_executor(model: Any, x: Any, **kwargs: Any) -> dict[str, Any]:
    """Run ``model`` with the executor, feeding ``x`` to its single graph input."""
    from qonnx_tools.executor import Executor

    executor = Executor(model)
    (name,) = executor.input_names  # exactly one runtime input
    return executor.run({name: x}, **kwargs)


def assert_outputs_close(
    path: Path, expected: Mapping[str, Any], got: Mapping[str, Any], *, rel: float = 1e-5
) -> None:
    """Assert every output in ``got`` matches ``expected`` within ``rel`` x max(1, max|expected|).

    For the tie-sensitive mobilenet (``TIE_SENSITIVE``) the argmax must match exactly and a larger
    difference skips the test (float reassociation flips quantizer ties) instead of failing.
    """
    import numpy as np
    import pytest

    assert expected, "no outputs to compare"
    assert set(got) >= set(expected), f"missing outputs: {sorted(set(expected) - set(got))}"
    for name, want in expected.items():
        want, have = np.asarray(want, np.float64), np.asarray(got[name], np.float64)
        assert have.shape == want.shape, f"{name}: shape {have.shape} != {want.shape}"
        diff = float(np.max(np.abs(have - want))) if want.size else 0.0
        scale = max(1.0, float(np.max(np.abs(want))) if want.size else 1.0)
        if path.parent.name in TIE_SENSITIVE:
            assert np.array_equal(have.argmax(-1), want.argmax(-1)), f"argmax changed (max diff {diff:.3g})"
            if diff > rel * scale:
                pytest.skip(
                    "4-bit model with near-tie activations: float reassociation flips quantizer ties "
                    f"(argmax equal, max diff {diff:.3g})"
                )
        assert diff <= rel * scale, f"{name}: max abs diff {diff:.3g} (scale {scale:.3g})"


@functools.lru_cache(maxsize=1)
def onnxruntime_u8s8_exact() -> bool:
    """Whether onnxruntime's uint8 x int8 integer kernels are exact on this CPU.

    On x86 CPUs without VNNI, onnxruntime's u8s8 GEMM adds pairs of products in int16
    with saturation (documented by onnxruntime; it suggests reduce_range), so QLinearConv /
    QLinearMatMul / MatMulInteger results there are not an exact reference. Probed with
    255 * 127 summed 64 times, which saturates any int16 pair sum.
    """
    import numpy as np
    import onnxruntime as ort
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("MatMulInteger", ["a", "b"], ["y"])], "probe",
        [helper.make_tensor_value_info("a", TensorProto.UINT8, [1, 64]),
         helper.make_tensor_value_info("b", TensorProto.INT8, [64, 16])],
        [helper.make_tensor_value_info("y", TensorProto.INT32, [1, 16])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (y,) = session.run(None, {"a": np.full((1, 64), 255, np.uint8), "b": np.full((64, 16), 127, np.int8)})
    return bool(np.all(y == 255 * 127 * 64))


#: pytest skip reason for comparisons of u8s8 integer kernels against onnxruntime.
U8S8_SKIP_REASON = "onnxruntime's uint8 x int8 kernels saturate on this CPU (no VNNI): not an exact reference"


def first_divergence(layer_steps: Iterable[tuple[str, Any]]) -> tuple[str, float] | None:
    """The first layer (in the order given: graph order) whose steps-off array is not all zero,
    with its largest step count; None when every layer agrees.

    Two float32 implementations may decide a rounding tie differently; on a tie-sensitive model
    the first layer that differs must differ by one step, and later layers carry that on."""
    import numpy as np

    for name, steps in layer_steps:
        worst = float(np.max(steps, initial=0))
        if worst > 0:
            return name, worst
    return None


#: Symbolic dimension names of the kinds real exporters leave behind (tf2onnx/QKeras, qonnx, torch).
_STALE_DIM_STYLES = ("unk__{k}", "{op}{k}_dim_{i}", "N")


def executed_values(proto: Any, feeds: Mapping[str, Any]) -> dict[str, Any]:
    """name -> array of every node output, from running ``proto`` in the executor on ``feeds``
    (real tensors: their shapes are ground truth for shape inference)."""
    from qonnx_tools._ir import ir
    from qonnx_tools.executor import Executor
    from qonnx_tools.model_io import normalise_domains

    model = ir.serde.deserialize_model(proto)
    normalise_domains(model)
    values = Executor(model).run(dict(feeds), keep_intermediates=True)
    produced = {name for node in proto.graph.node for name in node.output if name}
    return {name: array for name, array in values.items() if name in produced}


def with_stale_value_info(proto: Any, feeds: Mapping[str, Any]) -> Any:
    """A copy of ``proto`` annotated as exporters with dynamic axes leave it: every node output
    and graph output declared with the right rank and element type but only symbolic dimensions
    (``unk__3``, ``Quant7_dim_1``, ``N``), although the graph input stays static.

    Ranks and element types come from running the model in the executor on ``feeds``."""
    import onnx
    from onnx import helper

    values = executed_values(proto, feeds)
    stale = onnx.ModelProto()
    stale.CopyFrom(proto)
    del stale.graph.value_info[:]
    outputs = {out.name: out for out in stale.graph.output}
    for k, node in enumerate(stale.graph.node):
        style = _STALE_DIM_STYLES[k % len(_STALE_DIM_STYLES)]
        for name in node.output:
            if name not in values:
                continue
            dims = [style.format(k=k, op=node.op_type, i=i) for i in range(values[name].ndim)]
            info = helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(values[name].dtype), dims)
            if name in outputs:
                outputs[name].CopyFrom(info)
            else:
                stale.graph.value_info.append(info)
    return stale


def without_value_info(proto: Any) -> Any:
    """A copy of ``proto`` with every ``value_info`` entry and every graph output's shape removed."""
    import onnx

    bare = onnx.ModelProto()
    bare.CopyFrom(proto)
    del bare.graph.value_info[:]
    for out in bare.graph.output:
        out.type.tensor_type.ClearField("shape")
    return bare
