"""infer-datatypes: hand-computed accumulator ranges, pass-through, the narrowest exact type of
integer constants in the integer part (from their values, numpy), annotations on disk under qonnx's
names, idempotence, and soundness on the shared corpus (annotated ranges hold on real data; the
streamlined models FINN reads have integer MatMul/Conv inputs, weights and outputs)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from qonnx_tools._ir import ir
from qonnx_tools.annotations import get_datatype, set_datatype
from qonnx_tools.constants import constant_array
from qonnx_tools.datatypes import DataType
from qonnx_tools.model_io import load, normalise_domains, save
from qonnx_tools.passes import make_pass, run_passes
from qonnx_tools.passes.infer_datatypes import InferDatatypes
from qonnx_tools.passes.infer_shapes import InferShapes
from qonnx_tools.streamline import Streamline
from qonnx_tools.testing import (
    FINN_CORPUS, brevitas_models, corpus_input, quant_node, run_executor, shared_dir, shared_models,
)

QONNX = "qonnx.custom_op.general"
F = TensorProto.FLOAT


# -- helpers -------------------------------------------------------------------


def bits_for(lo: int, hi: int) -> str:
    """Name of the narrowest INTn/UINTn holding [lo, hi], by the two's-complement formula."""
    if lo >= 0:
        n = 1
        while hi > 2**n - 1:
            n += 1
        return f"UINT{n}"
    n = 1
    while not (-(2 ** (n - 1)) <= lo and hi <= 2 ** (n - 1) - 1):
        n += 1
    return f"INT{n}"


def narrowest_name(values) -> str:
    """The narrowest qonnx integer type holding every value, by the spec's value sets: the first of
    BINARY {0, 1}, BIPOLAR {-1, +1}, INT1 {-1, 0} (1 bit), TERNARY {-1, 0, 1} (2 bits) that holds
    them, else the narrowest UINTn [0, 2**n - 1] / INTn [-2**(n-1), 2**(n-1) - 1]."""
    found = set(np.unique(np.asarray(values)).tolist())
    for name, members in (("BINARY", {0, 1}), ("BIPOLAR", {-1, 1}), ("INT1", {-1, 0}), ("TERNARY", {-1, 0, 1})):
        if found <= members:
            return name
    return bits_for(min(found), max(found))


def const(name: str, array) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(array), name)


def quant(x: str, y: str, bits: int, signed: int = 1, scale: str = "one") -> onnx.NodeProto:
    return quant_node(x, scale, "zero", f"b{bits}", y, op_type="IntQuant", signed=signed, rounding_mode=None)


QUANT_PARAMS = [
    const("one", np.float32(1.0)),
    const("zero", np.float32(0.0)),
    const("half", np.float32(0.5)),
    *[const(f"b{b}", np.float32(b)) for b in (2, 3, 4)],
]


def build(nodes, inputs, outputs, initializers=(), annotations=None) -> ir.Model:
    """IR model with shapes inferred and the given graph-input annotations."""
    untyped = [onnx.ValueInfoProto(name=o) for o in outputs]
    graph = helper.make_graph(nodes, "g", inputs, untyped, [*QUANT_PARAMS, *initializers])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid(QONNX, 1)])
    model = ir.serde.deserialize_model(proto)
    normalise_domains(model)
    InferShapes(strict=True)(model)
    for name, datatype in (annotations or {}).items():
        set_datatype(_value(model, name), DataType.parse(datatype))
    return model


def _value(model: ir.Model, name: str) -> ir.Value:
    for value in model.graph.inputs:
        if value.name == name:
            return value
    if name in model.graph.initializers:
        return model.graph.initializers[name]
    for node in model.graph:
        for value in node.outputs:
            if value.name == name:
                return value
    raise KeyError(name)


def dt(model: ir.Model, name: str) -> str | None:
    found = get_datatype(_value(model, name))
    return None if found is None else str(found)


def infer(model: ir.Model) -> bool:
    return InferDatatypes()(model).modified


def tensor(name, shape, elem=F):
    return helper.make_tensor_value_info(name, elem, shape)


# -- quantizers ----------------------------------------------------------------


def test_uint8_input_times_int4_weights_matmul_accumulator():
    rng = np.random.default_rng(1)
    w = const("W", rng.uniform(-9, 9, size=(16, 5)).astype(np.float32))
    model = build(
        [quant("W", "Wq", 4), helper.make_node("MatMul", ["x", "Wq"], ["y"])],
        [tensor("x", [1, 16])], ["y"], [w], annotations={"x": "UINT8"},
    )
    assert infer(model)
    assert dt(model, "x") == "UINT8"
    assert dt(model, "Wq") == "INT4"
    # K = 16 products of [0, 255] x [-8, 7]
    lo, hi = 16 * 255 * -8, 16 * 255 * 7
    assert (lo, hi) == (-32640, 28560)
    assert dt(model, "y") == bits_for(lo, hi) == "INT16"
    assert dt(model, "W") is None  # weights are not annotated by the pass


def test_integer_constant_weights_give_exact_per_column_bounds():
    weights = np.array([[1, -2, 0], [3, 1, -1], [-4, 2, 0], [2, 2, -1]], np.float32)  # K=4, N=3
    model = build(
        [helper.make_node("MatMul", ["x", "W"], ["y"])],
        [tensor("x", [2, 4])], ["y"], [const("W", weights)], annotations={"x": "UINT4"},
    )
    infer(model)
    lo = min(sum(min(w * 0, w * 15) for w in column) for column in weights.T.tolist())
    hi = max(sum(max(w * 0, w * 15) for w in column) for column in weights.T.tolist())
    assert (lo, hi) == (-60, 90)  # column 0: -4*15 .. (1+3+2)*15
    assert dt(model, "y") == bits_for(lo, hi) == "INT8"
    # the worst case K * extremes would have needed more: 4 * 15 * [-4, 3] = [-240, 180]
    assert bits_for(-240, 180) == "INT9"


def test_bipolar_quantizers_and_bipolar_matmul():
    model = build(
        [
            helper.make_node("BipolarQuant", ["x", "one"], ["xb"], domain=QONNX),
            helper.make_node("BipolarQuant", ["W", "one"], ["wb"], domain=QONNX),
            helper.make_node("BipolarQuant", ["x", "half"], ["xs"], domain=QONNX),
            helper.make_node("MatMul", ["xb", "wb"], ["y"]),
        ],
        [tensor("x", [3, 10])], ["y", "xs"], [const("W", np.ones((10, 4), np.float32))],
    )
    infer(model)
    assert dt(model, "xb") == "BIPOLAR" and dt(model, "wb") == "BIPOLAR"
    assert dt(model, "xs") == "SCALEDINT<1>"
    assert dt(model, "y") == bits_for(-10, 10) == "INT5"
    assert dt(model, "x") == "FLOAT32"  # unannotated float graph input


def test_relu_of_signed_and_unsigned_types():
    model = build(
        [
            quant("x", "s4", 4),
            helper.make_node("Relu", ["s4"], ["r4"]),
            quant("x", "u4", 4, signed=0),
            helper.make_node("Relu", ["u4"], ["ru4"]),
            helper.make_node("BipolarQuant", ["x", "one"], ["b"], domain=QONNX),
            helper.make_node("Relu", ["b"], ["rb"]),
            helper.make_node("Relu", ["x"], ["rf"]),
        ],
        [tensor("x", [4])], ["r4", "ru4", "rb", "rf"],
    )
    infer(model)
    assert dt(model, "r4") == bits_for(0, 7) == "UINT3"
    assert dt(model, "ru4") == "UINT4"
    assert dt(model, "rb") == "BINARY"  # {0, 1}: UINT1, written under qonnx's name for the set
    assert dt(model, "rf") == "FLOAT32"


def test_multithreshold_out_dtype():
    thresholds = const("T", np.sort(np.random.default_rng(0).normal(size=(3, 7)), axis=1).astype(np.float32))
    model = build(
        [helper.make_node("MultiThreshold", ["x", "T"], ["y"], domain=QONNX, out_dtype="UINT3")],
        [tensor("x", [1, 3, 2, 2])], ["y"], [thresholds],
    )
    infer(model)
    assert dt(model, "y") == "UINT3"


# -- data movement -----------------------------------------------------------------


def test_data_movement_keeps_the_datatype_and_shape_tensors_are_not_annotated():
    nodes = [
        quant("x", "q", 3),
        helper.make_node("Reshape", ["q", "shape"], ["r"]),
        helper.make_node("Transpose", ["r"], ["t"], perm=[1, 0]),
        helper.make_node("Flatten", ["t"], ["f"]),
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("Gather", ["q", "idx"], ["g"], axis=1),
        helper.make_node("Slice", ["q", "starts", "ends"], ["sl"]),
        helper.make_node("Split", ["q"], ["s1", "s2"], axis=1),
        helper.make_node("MaxPool", ["q4"], ["mp"], kernel_shape=[2, 2]),
        helper.make_node("Unsqueeze", ["q", "axes"], ["q4"]),
        helper.make_node("Resize", ["q4", "", "scales"], ["rs"], mode="nearest"),
        helper.make_node("Resize", ["q4", "", "scales"], ["rl"], mode="linear"),
        helper.make_node("Pad", ["q", "pads"], ["p0"]),
        helper.make_node("Pad", ["q", "pads", "minus9"], ["p9"]),
    ]
    inits = [
        const("shape", np.array([4, 6], np.int64)),
        const("idx", np.array([0, 2], np.int64)),
        const("starts", np.array([0], np.int64)),
        const("ends", np.array([1], np.int64)),
        const("axes", np.array([0, 1], np.int64)),
        const("scales", np.array([1, 1, 2, 2], np.float32)),
        const("pads", np.array([0, 1, 0, 1], np.int64)),
        const("minus9", np.float32(-9)),
    ]
    model = build(nodes, [tensor("x", [6, 4])], ["f", "g", "sl", "s1", "s2", "mp", "rs", "rl", "p0", "p9", "s"], inits)
    infer(model)
    for name in ("q", "r", "t", "f", "g", "sl", "s1", "s2", "q4", "mp", "rs", "p0"):
        assert dt(model, name) == "INT3", name
    assert dt(model, "rl") == "FLOAT32"
    assert dt(model, "p9") == bits_for(-9, 3) == "INT5"  # the pad value widens the range
    assert dt(model, "s") is None  # int64 shape tensor


def test_concat_same_and_mixed_types():
    model = build(
        [
            quant("x", "a", 4),
            quant("x", "b", 4, signed=0),
            quant("x", "c", 4),
            helper.make_node("Concat", ["a", "c"], ["same"], axis=0),
            helper.make_node("Concat", ["a", "b"], ["mixed"], axis=0),
            helper.make_node("Concat", ["a", "x"], ["withfloat"], axis=0),
        ],
        [tensor("x", [2])], ["same", "mixed", "withfloat"],
    )
    infer(model)
    assert dt(model, "same") == "INT4"
    assert dt(model, "mixed") == bits_for(-8, 15) == "INT5"
    assert dt(model, "withfloat") == "FLOAT32"


# -- arithmetic ----------------------------------------------------------------------


def test_add_sub_mul_ranges_and_float_scale():
    model = build(
        [
            quant("x", "a", 4),
            quant("x", "u", 4, signed=0),
            helper.make_node("Add", ["a", "a"], ["add"]),
            helper.make_node("Sub", ["u", "u"], ["sub"]),
            helper.make_node("Mul", ["a", "a"], ["mul"]),
            helper.make_node("Mul", ["a", "half"], ["scaled"]),
            helper.make_node("Add", ["u", "three"], ["shifted"]),
        ],
        [tensor("x", [2])], ["add", "sub", "mul", "scaled", "shifted"], [const("three", np.float32(3))],
    )
    infer(model)
    assert dt(model, "add") == bits_for(-16, 14) == "INT5"
    assert dt(model, "sub") == bits_for(-15, 15) == "INT5"
    assert dt(model, "mul") == bits_for(-56, 64) == "INT8"
    assert dt(model, "scaled") == "FLOAT32"
    assert dt(model, "shifted") == bits_for(3, 18) == "UINT5"  # a constant adds its exact value


def test_conv_accumulator_with_quantized_and_constant_weights():
    rng = np.random.default_rng(2)
    w_float = const("W", rng.uniform(-5, 5, size=(8, 3, 3, 3)).astype(np.float32))
    w_int = np.zeros((2, 2, 1, 2), np.float32)
    w_int[0] = [[[1, 2]], [[-1, 0]]]
    w_int[1] = [[[-3, 0]], [[0, 1]]]
    model = build(
        [
            quant("W", "Wq", 3),
            helper.make_node("Conv", ["x", "Wq"], ["c"], pads=[1, 1, 1, 1]),
            helper.make_node("Conv", ["x2", "Wi", "bias"], ["ci"], group=1),
        ],
        [tensor("x", [1, 3, 5, 5]), tensor("x2", [1, 2, 4, 4])], ["c", "ci"],
        [w_float, const("Wi", w_int), const("bias", np.array([5, -2], np.float32))],
        annotations={"x": "UINT2", "x2": "UINT2"},
    )
    infer(model)
    k = 3 * 3 * 3
    products = [a * b for a in (0, 3) for b in (-4, 3)]
    assert dt(model, "c") == bits_for(k * min(products), k * max(products)) == "INT10"
    # per output channel, exactly: ch0 in [0*.. -1*3, (1+2)*3] + 5, ch1 in [-3*3, 1*3] - 2
    lo = min(-3 + 5, -9 - 2)
    hi = max(9 + 5, 3 - 2)
    assert dt(model, "ci") == bits_for(lo, hi) == "INT5"


def test_gemm_with_trans_b_and_integer_bias_and_alpha():
    rng = np.random.default_rng(3)
    model = build(
        [
            quant("W", "Wq", 2),
            helper.make_node("Gemm", ["x", "Wq", "bias"], ["y"], transB=1),
            helper.make_node("Gemm", ["x", "Wq"], ["ya"], transB=1, alpha=0.5),
        ],
        [tensor("x", [1, 6])], ["y", "ya"],
        [const("W", rng.normal(size=(3, 6)).astype(np.float32)), const("bias", np.array([100, -100, 0], np.float32))],
        annotations={"x": "INT3"},
    )
    infer(model)
    products = [a * b for a in (-4, 3) for b in (-2, 1)]
    lo, hi = 6 * min(products) - 100, 6 * max(products) + 100
    assert dt(model, "y") == bits_for(lo, hi) == "INT9"
    assert dt(model, "ya") == "FLOAT32"


# -- integer constants: the narrowest exact type, from the values ---------------------


def column_bounds(weights: np.ndarray, lo: int, hi: int) -> tuple[int, int]:
    """Exact accumulator range of x @ weights for x in [lo, hi], by numpy."""
    w = weights.astype(np.int64)
    return int(np.minimum(w * lo, w * hi).sum(0).min()), int(np.maximum(w * lo, w * hi).sum(0).max())


@pytest.mark.parametrize(
    "values, expected",
    [
        ([[1, -1, 1], [-1, -1, 1]], "BIPOLAR"),
        ([[0, 1, 1], [1, 0, 0]], "BINARY"),
        ([[1, 1, 1], [1, 1, 1]], "BINARY"),  # all ones (an AveragePool's sum kernel): BINARY, not BIPOLAR
        ([[-1, 0, 1], [0, 0, -1]], "TERNARY"),
        ([[-1, 0, 0], [0, -1, -1]], "INT1"),
        ([[-3, 3, 0], [2, -1, 1]], "INT3"),
        ([[-4, 3, 0], [2, -1, 1]], "INT3"),
        ([[-5, 3, 0], [2, -1, 1]], "INT4"),
        ([[0, 5, 7], [2, 1, 1]], "UINT3"),
        ([[0, 8, 7], [2, 1, 1]], "UINT4"),
        ([[-127, 127, 0], [1, 2, 3]], "INT8"),
    ],
)
def test_integer_weights_get_the_narrowest_exact_type(values, expected):
    weights = np.array(values, np.float32)
    model = build(
        [helper.make_node("MatMul", ["x", "W"], ["y"])],
        [tensor("x", [1, 2])], ["y"], [const("W", weights)], annotations={"x": "UINT4"},
    )
    assert infer(model)
    got = dt(model, "W")
    assert got == expected == narrowest_name(weights)
    assert dt(model, "y") == bits_for(*column_bounds(weights, 0, 15))
    assert not infer(model)


@pytest.mark.parametrize("declared", ["SCALEDINT<3>", "FLOAT32", "INT8", "INT2"])
def test_a_declared_weight_annotation_gives_way_to_the_values(declared):
    """kwsmlp_w3a3: integer weights in [-3, 3] declared SCALEDINT<3> made their MatMul FLOAT32.
    Wider (INT8), non-integer and too narrow (INT2) declarations are all replaced by INT3."""
    weights = np.random.default_rng(5).integers(-3, 4, size=(6, 4)).astype(np.float32)
    weights[0, 0], weights[1, 1] = -3, 3
    model = build(
        [helper.make_node("MatMul", ["x", "W"], ["y"])],
        [tensor("x", [1, 6])], ["y"], [const("W", weights)], annotations={"x": "UINT3"},
    )
    set_datatype(_value(model, "W"), DataType.parse(declared))
    assert infer(model)
    assert dt(model, "W") == bits_for(-3, 3) == "INT3"
    assert dt(model, "y") == bits_for(*column_bounds(weights, 0, 7))
    assert not infer(model)


def test_only_constants_of_the_integer_part_are_annotated():
    thresholds = np.array([[-3, 0, 4]] * 3, np.float32)
    model = build(
        [
            quant("x", "q", 4),  # INT4
            helper.make_node("MatMul", ["f", "W"], ["float_mm"]),  # float data: its weights stay unannotated
            helper.make_node("Mul", ["q", "two"], ["doubled"]),
            helper.make_node("Mul", ["q", "half"], ["halved"]),
            helper.make_node("Add", ["q", "bias"], ["biased"]),
            helper.make_node("Add", ["f", "bias2"], ["float_add"]),
            helper.make_node("MultiThreshold", ["q", "T"], ["mt"], domain=QONNX, out_dtype="UINT2"),
            helper.make_node("MultiThreshold", ["f", "T2"], ["mt_float"], domain=QONNX, out_dtype="UINT2"),
        ],
        [tensor("x", [1, 3]), tensor("f", [1, 3])],
        ["float_mm", "doubled", "halved", "biased", "float_add", "mt", "mt_float"],
        [
            const("W", np.array([[1, -2], [0, 3], [2, 2]], np.float32)),
            const("two", np.float32(2)),
            const("bias", np.array([-2, 5, 0], np.float32)),
            const("bias2", np.array([1, 2, 3], np.float32)),
            const("T", thresholds),
            const("T2", thresholds + 1),
        ],
    )
    infer(model)
    assert dt(model, "two") == bits_for(2, 2) == "UINT2"
    assert dt(model, "doubled") == bits_for(-16, 14)
    assert dt(model, "bias") == bits_for(-2, 5) == "INT4"
    assert dt(model, "biased") == bits_for(-8 - 2, 7 + 5)
    assert dt(model, "T") == bits_for(-3, 4) == "INT4"
    for name in ("W", "half", "bias2", "T2", "one", "zero", "b4"):  # float operands, quantizer parameters
        assert dt(model, name) is None, name
    assert dt(model, "float_mm") == "FLOAT32"


def test_binary_is_written_under_qonnx_name(tmp_path):
    """{0, 1} is UINT1 here; qonnx 1.0 reads UINT1 as BINARY and names it so: files carry BINARY."""
    model = build(
        [helper.make_node("Conv", ["x", "ones"], ["s"], group=2), helper.make_node("Relu", ["b"], ["r"]),
         helper.make_node("BipolarQuant", ["f", "one"], ["b"], domain=QONNX)],
        [tensor("x", [1, 2, 3, 3]), tensor("f", [4])], ["s", "r"],
        [const("ones", np.ones((2, 1, 2, 2), np.float32))], annotations={"x": "UINT4"},
    )
    infer(model)
    proto = onnx.load(str(save(model, tmp_path / "binary.onnx")))
    on_disk = {
        entry.tensor_name: {kv.key: kv.value for kv in entry.quant_parameter_tensor_names}["finn_datatype"]
        for entry in proto.graph.quantization_annotation
    }
    assert on_disk["ones"] == "BINARY"
    assert on_disk["r"] == "BINARY"  # Relu of BIPOLAR: {0, 1}
    assert on_disk["s"] == bits_for(0, 4 * 15) == "UINT6"
    assert "UINT1" not in on_disk.values()


# -- annotations: declared inputs, stale values, idempotence, disk -------------------


def simple_model() -> ir.Model:
    return build(
        [quant("x", "q", 4), helper.make_node("Relu", ["q"], ["r"]), helper.make_node("Reshape", ["r", "shape"], ["y"])],
        [tensor("x", [2, 3])], ["y"], [const("shape", np.array([6], np.int64))],
    )


def test_idempotent_and_modified_is_honest():
    model = simple_model()
    assert infer(model)
    snapshot = {n: dt(model, n) for n in ("x", "q", "r", "y")}
    assert snapshot == {"x": "FLOAT32", "q": "INT4", "r": "UINT3", "y": "UINT3"}
    assert not infer(model)
    assert {n: dt(model, n) for n in snapshot} == snapshot


def test_stale_annotations_are_recomputed_but_input_annotations_kept():
    model = simple_model()
    infer(model)
    set_datatype(_value(model, "r"), DataType.parse("INT2"))  # stale
    set_datatype(_value(model, "shape"), None)
    set_datatype(_value(model, "x"), DataType.parse("INT8"))  # user-declared input type
    assert infer(model)
    assert dt(model, "r") == "UINT3"
    assert dt(model, "x") == "INT8"
    assert not infer(model)


def test_annotation_on_shape_tensor_is_removed():
    model = build(
        [helper.make_node("Shape", ["x"], ["s"]), helper.make_node("Reshape", ["x", "s"], ["y"])],
        [tensor("x", [2, 3])], ["y"],
    )
    set_datatype(_value(model, "s"), DataType.parse("INT4"))
    assert infer(model)
    assert dt(model, "s") is None
    assert dt(model, "y") == "FLOAT32"


def test_annotations_survive_save_and_load(tmp_path):
    model = simple_model()
    infer(model)
    path = save(model, tmp_path / "annotated.onnx")
    proto = onnx.load(str(path))
    on_disk = {
        entry.tensor_name: {kv.key: kv.value for kv in entry.quant_parameter_tensor_names}
        for entry in proto.graph.quantization_annotation
    }
    assert on_disk["q"] == {"finn_datatype": "INT4"}
    assert on_disk["r"] == {"finn_datatype": "UINT3"}
    assert on_disk["y"] == {"finn_datatype": "UINT3"}
    assert on_disk["x"] == {"finn_datatype": "FLOAT32"}
    assert "shape" not in on_disk
    reloaded = load(path)
    assert not InferDatatypes()(reloaded).modified


def test_registered_and_usable_in_pipelines():
    model = simple_model()
    assert run_passes(model, "infer-shapes,infer-datatypes").modified
    assert make_pass("infer-datatypes").name == "infer-datatypes"
    assert not run_passes(model, "infer-datatypes").modified


# -- shared corpus ----------------------------------------------------------------------

CORPUS = [d / "qonnx.onnx" for d in brevitas_models() if (d / "qonnx.onnx").is_file()] + shared_models(
    "qonnx-model-zoo/**/*.onnx"
)


@pytest.mark.shared
@pytest.mark.parametrize("path", CORPUS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_corpus_annotations_are_complete_and_idempotent(path):
    model = load(path)
    InferShapes()(model)
    InferDatatypes()(model)
    for node in model.graph:
        for value in node.outputs:
            annotated = get_datatype(value)
            if value.type.dtype.is_floating_point():
                assert annotated is not None, value.name
            else:
                assert annotated is None, value.name
    assert not InferDatatypes()(model).modified


@pytest.mark.shared
@pytest.mark.parametrize("path", [p for p in CORPUS if (p.parent / "io.npz").is_file()], ids=lambda p: p.parent.name)
def test_corpus_integer_annotations_hold_on_real_data(path):
    """Every tensor annotated with an integer datatype holds only values of that type."""
    model = load(path)
    InferShapes()(model)
    InferDatatypes()(model)
    values = run_executor(model, corpus_input(path), keep_intermediates=True)
    checked = 0
    for node in model.graph:
        for value in node.outputs:
            datatype = get_datatype(value)
            if datatype is not None and datatype.is_integer and value.name in values:
                assert datatype.allowed(values[value.name]).all(), (value.name, str(datatype))
                checked += 1
    if path.parent.name.startswith("bnn_"):
        assert checked > 0


#: Streamlined models FINN must read (issue 18): path under ../shared/models.
FINN_MODELS = list(FINN_CORPUS)


def shared_path(rel: str):
    root = shared_dir()
    if root is None or not (root / "models" / rel).is_file():
        pytest.skip(f"{rel} not in ../shared/models")
    return root / "models" / rel


def _all_values(model: ir.Model) -> list[ir.Value]:
    values = [*model.graph.inputs, *model.graph.initializers.values()]
    return values + [v for node in model.graph for v in node.outputs]


def finn_inputs(path, model, runs: int = 4) -> list:
    """The corpus input (io.npz) when there is one, else ``runs`` seeded uniform [-1, 1] inputs."""
    if (path.parent / "io.npz").is_file():
        return [corpus_input(path).astype(np.float32)]
    (value,) = [v for v in model.graph.inputs if v.const_value is None]
    shape = [d if isinstance(d, int) else 1 for d in value.shape]
    rng = np.random.default_rng(0)
    return [rng.uniform(-1, 1, size=shape).astype(np.float32) for _ in range(runs)]


@pytest.mark.shared
@pytest.mark.parametrize("rel", FINN_MODELS, ids=lambda rel: rel.split("/")[-2 if rel.endswith("qonnx.onnx") else -1])
def test_streamlined_corpus_is_finn_ready(rel):
    """After streamline: every MatMul/Conv input, weight and output has an integer datatype, each weight
    the narrowest that holds its values (numpy on the initializer), and every annotated tensor holds
    what the executor computes (the annotated type's range; integers where it is an integer type)."""
    path = shared_path(rel)
    model = load(path)
    Streamline()(model)
    linear = [n for n in model.graph if n.op_type in ("MatMul", "Conv")]
    assert linear
    for node in linear:
        for value in [*node.inputs, *node.outputs]:
            annotated = get_datatype(value)
            assert annotated is not None and annotated.is_integer, (node.name, value.name, str(annotated))
            weights = constant_array(value)
            if weights is not None:
                assert str(annotated) == narrowest_name(weights), (value.name, str(annotated))
    annotated = {v.name: (v, get_datatype(v)) for v in _all_values(model) if get_datatype(v) is not None}
    checked = 0
    for x in finn_inputs(path, model):
        values = run_executor(model, x, keep_intermediates=True)
        for name, (value, datatype) in annotated.items():
            array = values[name] if name in values else constant_array(value)
            if array is None:
                continue
            checked += 1
            if datatype.is_integer:
                assert datatype.allowed(array).all(), (name, str(datatype), np.unique(array)[:8])
            else:
                assert np.all(np.isfinite(array)) and datatype.min <= array.min() and array.max() <= datatype.max
    assert checked >= 3 * len(linear)
