"""infer-shapes: handmade graphs against hand-computed shapes and onnx.shape_inference,
and the shared corpus against whole-model onnx.shape_inference, onnxruntime and the executor."""

from __future__ import annotations

import warnings

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from qonnx_tools._ir import ir
from qonnx_tools.errors import BadInputError, UnsupportedOpError
from qonnx_tools.model_io import load, normalise_domains
from qonnx_tools.passes import make_pass, run_passes
from qonnx_tools.passes.infer_shapes import InferShapes, ShapeConflictWarning, unknown_shapes
from qonnx_tools.testing import brevitas_models, corpus_input, run_executor, shared_models

QONNX = "qonnx.custom_op.general"


# -- helpers -------------------------------------------------------------------


def make_model(nodes, inputs, outputs, initializers=(), opset=13, extra_opsets=()) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(initializers))
    opsets = [helper.make_opsetid("", opset), *[helper.make_opsetid(d, v) for d, v in extra_opsets]]
    return helper.make_model(graph, opset_imports=opsets)


def untyped_output(name: str) -> onnx.ValueInfoProto:
    """A graph output with neither type nor shape (what the pass must infer)."""
    info = onnx.ValueInfoProto()
    info.name = name
    return info


def to_ir(proto: onnx.ModelProto) -> ir.Model:
    model = ir.serde.deserialize_model(proto)
    normalise_domains(model)
    return model


def shapes_of(model: ir.Model) -> dict[str, tuple]:
    """name -> (ONNX elem type, dims with ints, names or None) of every node output."""
    out = {}
    for node in model.graph:
        for value in node.outputs:
            dtype = value.type.dtype.value if value.type is not None else None
            dims = None if value.shape is None else tuple(d if isinstance(d, int) else d.value for d in value.shape)
            out[value.name] = (dtype, dims)
    return out


def onnx_reference(proto: onnx.ModelProto) -> dict[str, tuple]:
    """name -> (elem type, dims) from onnx's whole-model shape inference (data propagation on)."""
    inferred = onnx.shape_inference.infer_shapes(proto, data_prop=True)
    out = {}
    for info in [*inferred.graph.value_info, *inferred.graph.output]:
        tensor = info.type.tensor_type
        dims = None
        if tensor.HasField("shape"):
            dims = tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in tensor.shape.dim)
        out[info.name] = (tensor.elem_type or None, dims)
    return out


def ort_shapes(proto: onnx.ModelProto, names: list[str], feeds: dict) -> dict[str, tuple]:
    """Actual shapes of (intermediate) tensors, from onnxruntime with optimisations disabled."""
    import onnxruntime as ort

    probe = onnx.ModelProto.FromString(proto.SerializeToString())
    outputs = {o.name for o in probe.graph.output}
    for name in names:
        if name not in outputs:
            probe.graph.output.append(untyped_output(name))
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(probe.SerializeToString(), options, providers=["CPUExecutionProvider"])
    results = session.run(names, feeds)
    return {name: tuple(r.shape) for name, r in zip(names, results)}


def check_against_onnx(got: dict[str, tuple], proto: onnx.ModelProto, feeds: dict) -> list[str]:
    """Compare the pass's shapes with onnx's whole-model inference.

    Element types must be equal. Where onnx knows every dimension, the shapes must
    be equal; where it leaves some unknown, the pass's (sharper) shape must agree
    with the dimensions onnx knows and with the actual shape onnxruntime computes.
    Returns the names of the values where the pass was sharper than onnx.
    """
    reference = onnx_reference(proto)
    sharper = []
    for name, (dtype, dims) in got.items():
        want_dtype, want_dims = reference[name]
        assert dtype == want_dtype, name
        if want_dims is not None and all(isinstance(d, int) for d in want_dims):
            assert dims == want_dims, name
            continue
        if want_dims is not None:
            assert dims is not None and len(dims) == len(want_dims), name
            assert all(not isinstance(w, int) or w == d for w, d in zip(want_dims, dims)), name
        if dims != want_dims:
            sharper.append(name)
    if sharper:
        actual = ort_shapes(proto, sharper, feeds)
        for name in sharper:
            assert got[name][1] == actual[name], name
    return sharper


def run(model: ir.Model, **options):
    pass_ = InferShapes(**options)
    result = pass_(model)
    return pass_, result


def conv_pool_gemm_proto(batch="N") -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.normal(size=(8, 3, 3, 3)).astype(np.float32), "W")
    b = numpy_helper.from_array(np.zeros(8, np.float32), "B")
    g = numpy_helper.from_array(rng.normal(size=(8 * 4 * 4, 10)).astype(np.float32), "G")
    nodes = [
        helper.make_node("Conv", ["x", "W", "B"], ["c"], pads=[1, 1, 1, 1], strides=[1, 1], name="conv"),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2], name="pool"),
        helper.make_node("Flatten", ["p"], ["f"], axis=1, name="flatten"),
        helper.make_node("Gemm", ["f", "G"], ["y"], name="gemm"),
    ]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 3, 8, 8])
    return make_model(nodes, [x], [untyped_output("y")], [w, b, g])


# -- standard ops ----------------------------------------------------------------


def test_conv_pool_gemm_shapes_by_hand_and_against_onnx():
    proto = conv_pool_gemm_proto()
    model = to_ir(proto)
    _, result = run(model)
    assert result.modified
    got = shapes_of(model)
    f = TensorProto.FLOAT
    # conv 3x3 pad 1: 8x8 stays 8x8; pool 2/2: 4x4; flatten 8*4*4 = 128; gemm -> 10
    assert got == {
        "c": (f, ("N", 8, 8, 8)),
        "r": (f, ("N", 8, 8, 8)),
        "p": (f, ("N", 8, 4, 4)),
        "f": (f, ("N", 128)),
        "y": (f, ("N", 10)),
    }
    assert got == onnx_reference(proto)
    assert unknown_shapes(model) == []


def test_symbolic_batch_is_kept_and_not_replaced():
    model = to_ir(conv_pool_gemm_proto(batch="batch"))
    run(model)
    assert model.graph.inputs[0].shape[0] == ir.SymbolicDim("batch")
    assert model.graph.outputs[0].shape[0] == ir.SymbolicDim("batch")
    assert model.graph.outputs[0].shape[1] == 10


def test_reshape_with_initializer_and_constant_node_shapes():
    shape_init = numpy_helper.from_array(np.array([0, -1], np.int64), "s1")
    nodes = [
        helper.make_node("Reshape", ["x", "s1"], ["a"]),
        helper.make_node("Constant", [], ["s2"], value=numpy_helper.from_array(np.array([-1, 4, 3], np.int64))),
        helper.make_node("Reshape", ["a", "s2"], ["b"]),
        helper.make_node("Constant", [], ["s3"], value_ints=[2, 6, 1]),
        helper.make_node("Reshape", ["b", "s3"], ["c"]),
    ]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 4])
    proto = make_model(nodes, [x], [untyped_output("c")], [shape_init])
    model = to_ir(proto)
    run(model)
    got = shapes_of(model)
    f, i64 = TensorProto.FLOAT, TensorProto.INT64
    assert got["a"] == (f, (2, 12))
    assert got["s2"] == (i64, (3,))
    assert got["b"] == (f, (2, 4, 3))
    assert got["c"] == (f, (2, 6, 1))
    assert got == onnx_reference(proto)


def tfc_flatten_proto(dims) -> onnx.ModelProto:
    """The TFC zoo flatten: Shape -> Gather(0) -> Unsqueeze -> Concat([., -1]) -> Reshape."""
    nodes = [
        helper.make_node("Shape", ["x"], ["shape"]),
        helper.make_node("Constant", [], ["zero"], value=numpy_helper.from_array(np.array(0, np.int64))),
        helper.make_node("Gather", ["shape", "zero"], ["batch"], axis=0),
        helper.make_node("Constant", [], ["axes"], value=numpy_helper.from_array(np.array([0], np.int64))),
        helper.make_node("Unsqueeze", ["batch", "axes"], ["batch1"]),
        helper.make_node("Constant", [], ["minus1"], value=numpy_helper.from_array(np.array([-1], np.int64))),
        helper.make_node("Concat", ["batch1", "minus1"], ["target"], axis=0),
        helper.make_node("Reshape", ["x", "target"], ["flat"]),
        helper.make_node("Relu", ["flat"], ["y"]),
    ]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, dims)
    return make_model(nodes, [x], [untyped_output("y")])


def test_shape_gather_concat_reshape_chain_is_resolved():
    proto = tfc_flatten_proto([1, 1, 28, 28])
    model = to_ir(proto)
    _, result = run(model)
    got = shapes_of(model)
    i64 = TensorProto.INT64
    assert got["shape"] == (i64, (4,))
    assert got["batch"] == (i64, ())
    assert got["target"] == (i64, (2,))
    assert got["flat"] == (TensorProto.FLOAT, (1, 784))
    assert got["y"] == (TensorProto.FLOAT, (1, 784))
    # onnx's own data propagation stops at this chain (it leaves 'flat' unknown);
    # where it knows a shape it must agree, the rest is checked by running onnxruntime
    sharper = check_against_onnx(got, proto, {"x": np.zeros((1, 1, 28, 28), np.float32)})
    assert sharper == ["flat", "y"]
    assert unknown_shapes(model, anonymous_dims=True) == []


def test_shape_chain_with_symbolic_batch_carries_the_symbol():
    model = to_ir(tfc_flatten_proto(["N", 1, 28, 28]))
    run(model)
    # Shape -> [N, 1, 28, 28]; Gather(0) -> N; Concat -> [N, -1]; -1 = N*1*28*28 / N = 784
    assert shapes_of(model)["flat"] == (TensorProto.FLOAT, ("N", 784))
    assert model.graph.outputs[0].shape == ir.Shape(["N", 784])
    assert unknown_shapes(model, anonymous_dims=True) == []


def test_partial_shape_through_slice_and_zero_copy():
    nodes = [
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("Slice", ["s", "starts", "ends"], ["lead"]),  # [N, C]
        helper.make_node("Concat", ["lead", "minus1"], ["target"], axis=0),  # [N, C, -1]
        helper.make_node("Reshape", ["x", "target"], ["a"]),
        helper.make_node("Reshape", ["x", "zeros"], ["b"]),  # [0, 0, -1]: copies N and 3
    ]
    inits = [
        numpy_helper.from_array(np.array([0], np.int64), "starts"),
        numpy_helper.from_array(np.array([2], np.int64), "ends"),
        numpy_helper.from_array(np.array([-1], np.int64), "minus1"),
        numpy_helper.from_array(np.array([0, 0, -1], np.int64), "zeros"),
    ]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 4, 5])
    model = to_ir(make_model(nodes, [x], [untyped_output("a"), untyped_output("b")], inits))
    run(model)
    got = shapes_of(model)
    assert got["a"] == (TensorProto.FLOAT, ("N", 3, 20))
    assert got["b"] == (TensorProto.FLOAT, ("N", 3, 20))


def test_shape_start_end_and_size_propagate():
    nodes = [
        helper.make_node("Shape", ["x"], ["hw"], start=2),
        helper.make_node("Size", ["x"], ["n"]),
        helper.make_node("Reshape", ["n", "one"], ["n1"]),
        helper.make_node("Concat", ["n1", "hw"], ["target"], axis=0),
        helper.make_node("ConstantOfShape", ["target"], ["y"]),
    ]
    one = numpy_helper.from_array(np.array([1], np.int64), "one")
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 4, 5])
    model = to_ir(make_model(nodes, [x], [untyped_output("y")], [one], opset=15))
    run(model)
    assert shapes_of(model)["y"] == (TensorProto.FLOAT, (120, 4, 5))


def test_large_constants_are_never_read(monkeypatch):
    reads = []

    class Spy(ir.Tensor):
        def numpy(self):
            reads.append(self.name)
            return super().numpy()

    model = to_ir(conv_pool_gemm_proto())
    for name in ("W", "G"):  # 216 and 1280 elements: W is small, G is not
        value = model.graph.initializers[name]
        value.const_value = Spy(value.const_value.numpy(), name=name)
    for node in model.graph:
        for value in node.outputs:
            value.type, value.shape = None, None
    run(model)
    assert "G" not in reads
    assert model.graph.outputs[0].shape == ir.Shape(["N", 10])


# -- QONNX ops -------------------------------------------------------------------


def test_channels_last_maxpool_via_registry():
    nodes = [
        helper.make_node("MaxPool", ["x"], ["p"], domain="qonnx.custom_op.channels_last", kernel_shape=[2, 2], strides=[2, 2]),
    ]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 8, 6, 3])
    model = to_ir(make_model(nodes, [x], [untyped_output("p")], extra_opsets=[("qonnx.custom_op.channels_last", 1)]))
    run(model)
    assert shapes_of(model)["p"] == (TensorProto.FLOAT, (2, 4, 3, 3))


def test_intquant_and_multithreshold_via_registry():
    scale = numpy_helper.from_array(np.array(1.0, np.float32), "scale")
    zp = numpy_helper.from_array(np.array(0.0, np.float32), "zp")
    bits = numpy_helper.from_array(np.array(4.0, np.float32), "bits")
    thresholds = numpy_helper.from_array(np.zeros((3, 7), np.float32), "thr")
    nodes = [
        helper.make_node("Quant", ["x", "scale", "zp", "bits"], ["q"], domain="onnx.brevitas", signed=1, narrow=0),
        helper.make_node("Transpose", ["q"], ["t"], perm=[0, 2, 3, 1]),
        helper.make_node("MultiThreshold", ["q", "thr"], ["m"], domain=QONNX, out_dtype="UINT3"),
    ]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 6])
    proto = make_model(
        nodes, [x], [untyped_output("m"), untyped_output("t")], [scale, zp, bits, thresholds],
        extra_opsets=[("onnx.brevitas", 1), (QONNX, 1)],
    )
    model = to_ir(proto)
    pass_, result = run(model)
    f = TensorProto.FLOAT
    got = shapes_of(model)
    assert got["q"] == (f, ("N", 3, 8, 6))
    assert got["t"] == (f, ("N", 8, 6, 3))
    assert got["m"] == (f, ("N", 3, 8, 6))
    assert pass_.failures == []
    assert result.modified


# -- modified, idempotence, conflicts, failures ------------------------------------


def test_second_run_reports_no_change():
    model = to_ir(tfc_flatten_proto([1, 1, 28, 28]))
    assert run(model)[1].modified
    before = shapes_of(model)
    assert not run(model)[1].modified
    assert shapes_of(model) == before


def test_fully_annotated_model_is_not_modified():
    proto = onnx.shape_inference.infer_shapes(conv_pool_gemm_proto(), data_prop=True)
    model = to_ir(proto)
    assert unknown_shapes(model) == []
    assert not run(model)[1].modified


def test_unnamed_unknown_dims_are_filled_in():
    proto = conv_pool_gemm_proto()
    proto.graph.output[0].CopyFrom(helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", None]))
    model = to_ir(proto)
    assert run(model)[1].modified
    assert model.graph.outputs[0].shape == ir.Shape(["N", 10])


def test_conflicting_declaration_is_replaced_with_a_warning_or_raises_when_strict():
    proto = conv_pool_gemm_proto()
    proto.graph.output[0].CopyFrom(helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 11]))
    model = to_ir(proto)
    with pytest.warns(ShapeConflictWarning, match=r"gemm.*'y'.*computed"):
        run(model)
    assert model.graph.outputs[0].shape == ir.Shape(["N", 10])  # Gemm with a (128, 10) weight
    with pytest.raises(BadInputError, match="gemm"):
        run(to_ir(proto), strict=True)


def test_unknown_op_stays_unknown_and_is_reported():
    nodes = [
        helper.make_node("Relu", ["x"], ["r"]),
        helper.make_node("Mystery", ["r"], ["m"], domain="com.example", name="mystery"),
        helper.make_node("Relu", ["m"], ["y"]),
    ]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])
    proto = make_model(nodes, [x], [untyped_output("y")], extra_opsets=[("com.example", 1)])
    model = to_ir(proto)
    pass_, result = run(model)
    assert result.modified  # r was inferred
    assert unknown_shapes(model) == ["m", "y"]
    assert len(pass_.failures) == 1 and "mystery" in pass_.failures[0]
    with pytest.raises(UnsupportedOpError, match="mystery"):
        run(to_ir(proto), strict=True)


def test_inference_error_is_reported_or_raised_when_strict():
    nodes = [helper.make_node("Add", ["a", "b"], ["y"], name="bad_add")]
    a = helper.make_tensor_value_info("a", TensorProto.FLOAT, [2, 3])
    b = helper.make_tensor_value_info("b", TensorProto.FLOAT, [4, 3])
    proto = make_model(nodes, [a, b], [untyped_output("y")])
    pass_, result = run(to_ir(proto))
    assert not result.modified
    assert "bad_add" in pass_.failures[0]
    with pytest.raises(BadInputError, match="bad_add"):
        run(to_ir(proto), strict=True)


def test_if_subgraphs_with_outer_scope_values():
    then = helper.make_graph([helper.make_node("Relu", ["x"], ["t"])], "then", [], [untyped_output("t")])
    other = helper.make_graph([helper.make_node("Neg", ["x"], ["e"])], "else", [], [untyped_output("e")])
    nodes = [helper.make_node("If", ["c"], ["y"], then_branch=then, else_branch=other)]
    inputs = [
        helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3]),
        helper.make_tensor_value_info("c", TensorProto.BOOL, []),
    ]
    model = to_ir(make_model(nodes, inputs, [untyped_output("y")]))
    run(model)
    assert model.graph.outputs[0].type == ir.TensorType(ir.DataType.FLOAT)
    assert model.graph.outputs[0].shape == ir.Shape(["N", 3])
    assert unknown_shapes(model) == []


def test_registered_and_usable_in_pipelines():
    model = to_ir(conv_pool_gemm_proto())
    assert run_passes(model, "infer-shapes").modified
    assert make_pass("infer-shapes", {"strict": "true"}).strict is True


# -- shared corpus ----------------------------------------------------------------

QCDQ_FILES = [d / "qcdq.onnx" for d in brevitas_models() if (d / "qcdq.onnx").is_file()]
QONNX_FILES = [
    f for d in brevitas_models() for f in (d / "qonnx.onnx", d / "qonnx_dynamo.onnx") if f.is_file()
] + shared_models("qonnx-model-zoo/**/*.onnx")


def _strip(proto: onnx.ModelProto) -> onnx.ModelProto:
    """The model without intermediate value_info and without graph-output shapes."""
    proto = onnx.ModelProto.FromString(proto.SerializeToString())
    del proto.graph.value_info[:]
    for output in proto.graph.output:
        output.type.tensor_type.ClearField("shape")
    return proto


@pytest.mark.shared
@pytest.mark.parametrize("path", QCDQ_FILES, ids=lambda p: p.parent.name)
def test_qcdq_corpus_matches_whole_model_onnx_inference(path):
    proto = _strip(onnx.load(str(path)))
    model = to_ir(proto)
    pass_, _ = run(model)
    assert pass_.failures == []
    assert unknown_shapes(model, anonymous_dims=True) == []
    got = shapes_of(model)
    initialized = {t.name for t in proto.graph.initializer}
    (feed,) = [i.name for i in proto.graph.input if i.name not in initialized]
    check_against_onnx(got, proto, {feed: np.load(path.parent / "io.npz")["input"]})


@pytest.mark.shared
@pytest.mark.parametrize("path", QONNX_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_qonnx_corpus_every_tensor_gets_a_shape(path):
    model = load(path)
    for node in model.graph:  # forget what the exporter declared
        for value in node.outputs:
            value.type, value.shape = None, None
    with warnings.catch_warnings():
        warnings.simplefilter("error", ShapeConflictWarning)
        pass_, result = run(model)
    assert result.modified
    assert pass_.failures == []
    assert unknown_shapes(model, anonymous_dims=True) == []


@pytest.mark.shared
@pytest.mark.parametrize("path", [d / "qonnx.onnx" for d in brevitas_models() if (d / "qonnx.onnx").is_file()],
                         ids=lambda p: p.parent.name)
def test_qonnx_corpus_shapes_match_execution(path):
    model = load(path)
    for node in model.graph:
        for value in node.outputs:
            value.type, value.shape = None, None
    run(model)
    values = run_executor(model, corpus_input(path), keep_intermediates=True)
    checked = 0
    for node in model.graph:
        for value in node.outputs:
            if value.name in values:
                array = np.asarray(values[value.name])
                assert tuple(value.shape) == array.shape, value.name
                assert value.type.dtype.numpy() == array.dtype, value.name
                checked += 1
    assert checked > 0, "no intermediate values were compared"
