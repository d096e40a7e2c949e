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

FINN_CORPUS = (
    "qonnx-model-zoo/tfc/TFC_1W1A.onnx", "qonnx-model-zoo/tfc/TFC_2W2A.onnx", "qonnx-model-zoo/kws/kwsmlp_w3a3.onnx",
    "brevitas/bnn_tfc_1w1a/qonnx.onnx", "brevitas/bnn_tfc_2w2a/qonnx.onnx", "brevitas/bnn_sfc_1w2a/qonnx.onnx",
    "brevitas/bnn_cnv_2w2a/qonnx.onnx",
    # a Gemm's integer weights (Brevitas' dynamo export names them val_N) were left unannotated
    "brevitas/trunc_avgpool_floor/qonnx.onnx", "brevitas/maxpool_quanttensor/qonnx.onnx",
    "brevitas/residual_shared_quant/qonnx.onnx", "brevitas/depthwise_grouped_conv2d/qonnx.onnx",
)
"""Models (under ../shared/models) whose streamlined form FINN must read with integer MatMul/Conv datatypes."""


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


# -- building QONNX nodes and small graphs ----------------------------------------------------


def quant_node(
    x: str,
    scale: str,
    zeropt: str,
    bitwidth: str,
    out: str,
    *,
    signed: int | None = 1,
    narrow: int | None = 0,
    rounding_mode: str | None = "ROUND",
    name: str = "",
    op_type: str = "Quant",
    domain: str | None = None,
) -> Any:
    """An ``onnx.NodeProto`` ``out = Quant(x, scale, zeropt, bitwidth)`` (value names) in the QONNX domain.

    ``op_type`` may be ``"IntQuant"`` (the newer name); an attribute given as None is left out
    (the op's default applies); an empty ``name`` leaves the node unnamed."""
    from onnx import helper

    from qonnx_tools.domains import QONNX

    return helper.make_node(
        op_type, [x, scale, zeropt, bitwidth], [out], name=name, domain=QONNX if domain is None else domain,
        signed=signed, narrow=narrow, rounding_mode=rounding_mode,
    )


class GraphBuilder:
    """Builds a float32 graph node by node: constants ``c<k>``, nodes ``<op><k>`` with output ``v<k>``,
    random-weight convolutions drawn from ``rng``; ``model`` infers shapes."""

    def __init__(self, rng: Any) -> None:
        self.rng = rng
        self.nodes: list[Any] = []
        self.inits: list[Any] = []
        self.k = 0

    def const(self, array: Any, name: str | None = None) -> str:
        import numpy as np
        from onnx import numpy_helper

        self.k += 1
        name = name or f"c{self.k}"
        self.inits.append(numpy_helper.from_array(np.asarray(array, np.float32), name))
        return name

    def node(self, op: str, inputs: Sequence[str], domain: str = "", **attrs: Any) -> str:
        from onnx import helper

        self.k += 1
        out = f"v{self.k}"
        self.nodes.append(helper.make_node(op, inputs, [out], name=f"{op.lower()}{self.k}", domain=domain, **attrs))
        return out

    def conv(self, x: str, cin: int, cout: int, k: int = 3, bias: bool = True, dims: int = 2, **attrs: Any) -> str:
        w = self.const(self.rng.standard_normal((cout, cin) + (k,) * dims) * 0.3)
        ins = [x, w] + ([self.const(self.rng.standard_normal(cout))] if bias else [])
        return self.node("Conv", ins, kernel_shape=[k] * dims, pads=[k // 2] * (2 * dims))

    def quant(self, x: str, scale: Any, bits: float = 4.0) -> str:
        """A signed, not narrow, ROUND ``Quant`` of ``x`` with constant parameters (zero-point 0)."""
        inputs = [x, self.const(scale), self.const(0.0), self.const(bits)]
        self.k += 1
        out = f"v{self.k}"
        self.nodes.append(quant_node(*inputs, out, name=f"quant{self.k}"))
        return out

    def model(self, inputs: Sequence[tuple[str, Any]], outputs: Sequence[str]) -> Any:
        """The IR model (ai.onnx 13, QONNX 1); ``inputs`` as (name, shape), outputs of unknown shape."""
        from onnx import TensorProto, helper

        from qonnx_tools._ir import ir
        from qonnx_tools.domains import QONNX
        from qonnx_tools.passes import run_passes

        f = TensorProto.FLOAT
        graph = helper.make_graph(
            self.nodes, "g", [helper.make_tensor_value_info(n, f, s) for n, s in inputs],
            [helper.make_tensor_value_info(o, f, None) for o in outputs], self.inits)
        proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid(QONNX, 1)])
        model = ir.from_proto(proto)
        run_passes(model, "infer-shapes")
        return model


# -- running passes and comparing ----------------------------------------------------------------


def run_pass(name: str, model: Any, **options: Any) -> Any:
    """Run the registered pass ``name`` with ``options`` on ``model`` (in place); its PassResult."""
    from qonnx_tools.passes import make_pass

    return make_pass(name, options)(model)


def op_types(model: Any) -> list[str]:
    """The op types of the main graph's nodes, in graph order."""
    return [n.op_type for n in model.graph]


def output_names(model: Any) -> list[str]:
    """The names of the graph outputs, in order."""
    return [v.name for v in model.graph.outputs]


def serialized(model: Any) -> bytes:
    """The model's protobuf bytes (equal bytes: nothing changed)."""
    from qonnx_tools._ir import ir

    return ir.to_proto(model).SerializeToString()


def run_before_and_after(proto: Any, model: Any, feeds: Mapping[str, Any]) -> tuple[dict, dict, dict, dict]:
    """(executor before, executor after, onnxruntime before, onnxruntime after): ``proto`` is the model
    before a pass, ``model`` the IR model after it."""
    from qonnx_tools._ir import ir
    from qonnx_tools.executor import execute
    from qonnx_tools.runtime import run_onnxruntime

    before = ir.from_proto(proto)
    return execute(before, feeds), execute(model, feeds), run_onnxruntime(before, feeds), run_onnxruntime(model, feeds)


def assert_bit_identical(proto: Any, model: Any, feeds: Mapping[str, Any]) -> None:
    """Every output of ``model`` equals that of ``proto`` bit for bit, in the executor and in onnxruntime."""
    import numpy as np

    ex0, ex1, rt0, rt1 = run_before_and_after(proto, model, feeds)
    for name in ex0:
        np.testing.assert_array_equal(ex1[name], ex0[name])
        np.testing.assert_array_equal(rt1[name], rt0[name])


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


_CORPUS_REFERENCE: dict[Path, Any] = {}


def assert_corpus_outputs_unchanged(path: Path, pass_: Any) -> None:
    """Run ``pass_`` on the corpus model ``path`` (after remove-static-inputs) and compare its outputs with
    the executor's on the model before (``assert_outputs_close``; the reference is computed once per path)."""
    x = corpus_input(path)
    if path not in _CORPUS_REFERENCE:
        _CORPUS_REFERENCE[path] = run_executor(prepare_corpus_model(path), x)
    model = prepare_corpus_model(path)
    pass_(model)
    assert_outputs_close(path, _CORPUS_REFERENCE[path], run_executor(model, x))


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


# -- the onnxruntime baseline of post-training quantization ----------------------------------


def ort_quantize_static_int8(src: str | Path, dst: str | Path, feeds: Iterable[Mapping[str, Any]]) -> None:
    """onnxruntime's own ``quantize_static`` of the float model ``src`` into ``dst``, calibrated on ``feeds``
    (input dicts): QDQ, int8 weights and activations, MinMax, symmetric, per tensor. The baseline our
    calibrators and accuracy tables are compared with (tests/quantize, benchmarks)."""
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.items = iter(feeds)

        def get_next(self):
            return next(self.items, None)

    quantize_static(str(src), str(dst), Reader(), quant_format=QuantFormat.QDQ, activation_type=QuantType.QInt8,
                    weight_type=QuantType.QInt8, per_channel=False, calibrate_method=CalibrationMethod.MinMax,
                    extra_options={"ActivationSymmetric": True, "WeightSymmetric": True})
