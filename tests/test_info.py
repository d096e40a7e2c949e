"""``summarize`` checked against facts recorded independently of our code.

For the Brevitas corpus, ``meta.json`` (written by the exporting script) records
node counts and each quantizer's bit width; for the zoo files, the ONNX protobuf
itself (read with onnx) is the reference. Each quantizer form (QONNX ops, Q/DQ chains,
DequantizeLinear of constants, DynamicQuantizeLinear, QLinear and Integer ops) is checked
on a small graph built with onnx.helper, and Brevitas' QCDQ and QOp exports against the
weights of its QONNX export of the same module.
"""

from __future__ import annotations

import json
import re
from collections import Counter

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from qonnx_tools.domains import QONNX, canonical_domain
from qonnx_tools.info import summarize
from qonnx_tools.model_io import load
from qonnx_tools.testing import brevitas_models, shared_models

CORPUS = [d for d in brevitas_models() if (d / "qonnx.onnx").is_file()]
ALL = shared_models()


def _key(op: str) -> str:
    return op if ":" not in op else f"{canonical_domain(op.split(':')[0])}:{op.split(':')[1]}"


@pytest.mark.shared
@pytest.mark.parametrize("folder", CORPUS, ids=lambda p: p.name)
def test_counts_match_exporter_record(folder):
    meta = json.loads((folder / "meta.json").read_text())["files"]["qonnx.onnx"]
    summary = summarize(load(folder / "qonnx.onnx"))
    assert summary.num_nodes == meta["num_nodes"]
    assert summary.op_counts == {_key(k): v for k, v in meta["nodes"].items()}
    n_quant = sum(v for k, v in meta["nodes"].items() if k.startswith("qonnx.custom_op.general:"))
    assert len(summary.quantizers) == n_quant
    assert [i.name for i in summary.inputs] == meta["graph_inputs"]
    assert [o.name for o in summary.outputs] == meta["graph_outputs"]


@pytest.mark.shared
@pytest.mark.parametrize("folder", CORPUS, ids=lambda p: p.name)
def test_quantizer_bits_match_brevitas_record(folder):
    """Each Brevitas quantizer whose bit width meta.json records appears with that width."""
    quantizers = json.loads((folder / "meta.json").read_text()).get("quantizers", [])
    summary = summarize(load(folder / "qonnx.onnx"))
    flat = {re.sub(r"[/.]", ".", q.node) + ".": q for q in summary.quantizers}
    checked = 0
    for record in quantizers:
        if not record.get("enabled") or "bit_width" not in record:
            continue
        module = "." + record["module"] + "."
        matches = [q for name, q in flat.items() if module in name]
        if len(matches) != 1:
            continue  # shared or fused quantizers: no one-to-one node
        q = matches[0]
        assert q.bitwidth == record["bit_width"], record["module"]
        if record.get("is_signed") is not None:
            assert q.signed == record["is_signed"], record["module"]
        if q.op in ("IntQuant", "Quant") and record.get("is_narrow_range") is not None:
            assert q.narrow == record["is_narrow_range"], record["module"]
        checked += 1
    if quantizers and not checked:
        pytest.skip("no one-to-one quantizer record in this model")


@pytest.mark.shared
@pytest.mark.parametrize("path", ALL, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_counts_match_protobuf(path):
    proto = onnx.load(str(path), load_external_data=False)
    summary = summarize(load(path))
    expected = Counter(
        n.op_type if n.domain in ("", "ai.onnx") else f"{canonical_domain(n.domain)}:{n.op_type}" for n in proto.graph.node
    )
    assert summary.op_counts == dict(expected)
    initialized = {t.name for t in proto.graph.initializer}
    assert [i.name for i in summary.inputs] == [v.name for v in proto.graph.input if v.name not in initialized]
    qonnx_nodes = sum(1 for n in proto.graph.node if canonical_domain(n.domain) == QONNX)
    assert sum(q.form == "qonnx" for q in summary.quantizers) == qonnx_nodes


def test_weight_memory_of_generated_model(tmp_path):
    """A 64x4 weight behind a 4-bit quantizer: 256 parameters, 8192 bits float, 1024 bits at INT4."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [
            helper.make_node("IntQuant", ["W", "s", "z", "b"], ["Wq"], domain=QONNX, narrow=1),
            helper.make_node("MatMul", ["x", "Wq"], ["y"]),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        [
            numpy_helper.from_array(np.ones((64, 4), np.float32), "W"),
            numpy_helper.from_array(np.ones((1, 4), np.float32), "s"),
            numpy_helper.from_array(np.array(0.0, np.float32), "z"),
            numpy_helper.from_array(np.array(4.0, np.float32), "b"),
        ],
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid(QONNX, 1)])
    onnx.save(proto, str(tmp_path / "m.onnx"))
    s = summarize(load(tmp_path / "m.onnx"))
    assert (s.num_parameters, s.weight_bits_float32, s.weight_bits_quantized) == (256, 256 * 32, 256 * 4)
    (q,) = s.quantizers
    assert (q.role, q.bitwidth, q.signed, q.narrow, q.granularity) == ("weight", 4.0, True, True, "per-channel(axis=1)")


# -- every quantizer form, on small graphs built with onnx.helper -------------------------------
# The expected counts are what each graph was built with.

F = TensorProto.FLOAT
MS = "com.microsoft"


def _init(name: str, array) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(array), name)


def _summarize(tmp_path, nodes, inits, inputs=(("x", F, [1, 8]),), outputs=(("y", F, None),), opset=13,
               extra_opsets=()):
    graph = helper.make_graph(
        nodes, "g",
        [helper.make_tensor_value_info(n, t, s) for n, t, s in inputs],
        [helper.make_tensor_value_info(n, t, s) for n, t, s in outputs],
        inits,
    )
    imports = [helper.make_opsetid("", opset)] + [helper.make_opsetid(d, v) for d, v in extra_opsets]
    proto = helper.make_model(graph, opset_imports=imports)
    path = tmp_path / "m.onnx"
    onnx.save(proto, str(path))
    return summarize(load(path))


def _row(q):
    return (q.form, q.op, q.role, q.bitwidth, q.signed, q.narrow, q.granularity)


def test_every_qonnx_op_is_one_quantizer(tmp_path):
    f32 = np.float32
    nodes = [
        helper.make_node("Quant", ["x", "s", "z", "b4"], ["a"], domain=QONNX, signed=1, narrow=0),
        helper.make_node("BipolarQuant", ["a", "s"], ["b"], domain=QONNX),
        # Trunc v2: X, scale, zeropt, in_bitwidth, out_scale, out_bitwidth
        helper.make_node("Trunc", ["b", "s", "z", "b8", "sz", "b4"], ["c"], domain=QONNX),
        helper.make_node("FloatQuant", ["c", "s", "e", "m", "mx"], ["d"], domain=QONNX),
        helper.make_node("MultiThreshold", ["d", "thr"], ["y"], domain=QONNX),
    ]
    inits = [_init("s", f32(0.5)), _init("z", f32(0)), _init("b4", f32(4)), _init("b8", f32(8)), _init("sz", f32(1)),
             _init("e", f32(4)), _init("m", f32(3)), _init("mx", f32(448)), _init("thr", np.zeros((1, 3), f32))]
    s = _summarize(tmp_path, nodes, inits, extra_opsets=[(QONNX, 2)])
    assert [q.op for q in s.quantizers] == ["Quant", "BipolarQuant", "Trunc", "FloatQuant", "MultiThreshold"]
    assert s.quantizer_forms == {"qonnx": 5} and s.quantizer_roles == {"activation": 5}
    assert [q.bitwidth for q in s.quantizers] == [4.0, 1.0, 4.0, 8.0, 2.0]  # MultiThreshold: 3 thresholds, 4 levels
    assert s.num_parameters == 0  # every initializer here is a quantizer parameter


def test_q_dq_pair_on_an_activation(tmp_path):
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "zp"], ["q"]),
             helper.make_node("DequantizeLinear", ["q", "s", "zp"], ["y"])]
    s = _summarize(tmp_path, nodes, [_init("s", np.float32(0.1)), _init("zp", np.int8(0))])
    (q,) = s.quantizers
    assert _row(q) == ("q-dq", "Q->DQ", "activation", 8.0, True, False, "per-tensor")
    assert (q.container, q.rounding_mode, q.tensor) == ("int8", "ROUND", "x")
    assert s.num_parameters == 0 and s.parameters_by_role == {"weight": 0, "bias": 0, "unquantized": 0}


@pytest.mark.parametrize(
    "zp, lo, hi, expected",
    [
        (np.int8(0), -7, 7, (4.0, True, True)),  # Brevitas' 4-bit narrow signed
        (np.int8(0), -8, 7, (4.0, True, False)),
        (np.uint8(0), 0, 15, (4.0, False, False)),
        (np.int8(0), -3, 5, (8.0, True, None)),  # no QONNX range: the container's width
    ],
)
def test_q_clip_dq_narrows_the_container(tmp_path, zp, lo, hi, expected):
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "zp"], ["q"]),
             helper.make_node("Clip", ["q", "lo", "hi"], ["c"]),
             helper.make_node("DequantizeLinear", ["c", "s", "zp"], ["y"])]
    inits = [_init("s", np.float32(0.1)), _init("zp", zp),
             _init("lo", zp.dtype.type(lo)), _init("hi", zp.dtype.type(hi))]
    s = _summarize(tmp_path, nodes, inits)
    (q,) = s.quantizers
    assert (q.form, q.op, q.role) == ("q-clip-dq", "Q->Clip->DQ", "activation")
    assert (q.bitwidth, q.signed, q.narrow) == expected
    assert s.num_parameters == 0  # scale, zero-point and Clip bounds are quantizer parameters


def test_int4_and_uint16_containers(tmp_path):
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z4"], ["q"]),
             helper.make_node("DequantizeLinear", ["q", "s", "z4"], ["a"]),
             helper.make_node("QuantizeLinear", ["a", "s", "z16"], ["q16"]),
             helper.make_node("DequantizeLinear", ["q16", "s", "z16"], ["y"])]
    inits = [_init("s", np.float32(0.1)), helper.make_tensor("z4", TensorProto.INT4, [], [0]),
             _init("z16", np.uint16(0))]
    s = _summarize(tmp_path, nodes, inits, opset=21)
    assert [(q.container, q.bitwidth, q.signed) for q in s.quantizers] == [("int4", 4.0, True), ("uint16", 16.0, False)]


def test_float_weight_through_q_dq_is_a_weight_parameter(tmp_path):
    """A float weight quantized in the graph (Brevitas' dynamo export): 8x4 parameters at 8 bits."""
    nodes = [helper.make_node("QuantizeLinear", ["W", "s", "zp"], ["wq"], axis=1),
             helper.make_node("DequantizeLinear", ["wq", "s", "zp"], ["w"], axis=1),
             helper.make_node("MatMul", ["x", "w"], ["y"])]
    inits = [_init("W", np.ones((8, 4), np.float32)), _init("s", np.full(4, 0.1, np.float32)),
             _init("zp", np.zeros(4, np.int8))]
    s = _summarize(tmp_path, nodes, inits)
    (q,) = s.quantizers
    assert _row(q) == ("q-dq", "Q->DQ", "weight", 8.0, True, False, "per-channel(axis=1)")
    assert q.quantized_elements == 32 and q.scale_shape == [4]
    assert (s.num_parameters, s.weight_bits_float32, s.weight_bits_quantized) == (32, 32 * 32, 32 * 8)
    assert s.parameters_by_role == {"weight": 32, "bias": 0, "unquantized": 0}


def test_dequantized_integer_weight_and_bias(tmp_path):
    """int8 weight and int32 bias behind lone DequantizeLinears (QCDQ weights): parameters at their element widths."""
    nodes = [helper.make_node("DequantizeLinear", ["Wi", "ws"], ["w"], axis=1),
             helper.make_node("DequantizeLinear", ["Bi", "bs"], ["b"]),
             helper.make_node("MatMul", ["x", "w"], ["m"]),
             helper.make_node("Add", ["m", "b"], ["y"])]
    inits = [_init("Wi", np.ones((8, 4), np.int8)), _init("ws", np.full(4, 0.1, np.float32)),
             _init("Bi", np.ones(4, np.int32)), _init("bs", np.float32(0.01))]
    s = _summarize(tmp_path, nodes, inits)
    assert [_row(q) for q in s.quantizers] == [
        ("dq-constant", "DQ", "weight", 8.0, True, False, "per-channel(axis=1)"),
        ("dq-constant", "DQ", "bias", 32.0, True, False, "per-tensor"),
    ]
    assert s.quantizers[0].rounding_mode is None and s.quantizers[0].quantized_elements == 32
    assert s.num_parameters == 36 and s.parameters_by_role == {"weight": 32, "bias": 4, "unquantized": 0}
    assert (s.weight_bits_float32, s.weight_bits_quantized) == (36 * 32, 32 * 8 + 4 * 32)


def test_clip_on_a_constant_weight(tmp_path):
    nodes = [helper.make_node("Clip", ["Wi", "lo", "hi"], ["wc"]),
             helper.make_node("DequantizeLinear", ["wc", "s"], ["w"]),
             helper.make_node("MatMul", ["x", "w"], ["y"])]
    inits = [_init("Wi", np.ones((8, 2), np.int8)), _init("lo", np.int8(-1)), _init("hi", np.int8(1)),
             _init("s", np.float32(0.5))]
    s = _summarize(tmp_path, nodes, inits)
    (q,) = s.quantizers
    assert _row(q) == ("dq-constant", "Clip->DQ", "weight", 2.0, True, True, "per-tensor")
    # the memory is the stored int8 width, not the Clip's 2 bits
    assert (s.num_parameters, s.weight_bits_quantized) == (16, 16 * 8)


def test_dq_of_a_quantized_graph_input(tmp_path):
    nodes = [helper.make_node("DequantizeLinear", ["x", "s", "zp"], ["y"])]
    s = _summarize(tmp_path, nodes, [_init("s", np.float32(0.5)), _init("zp", np.uint8(128))],
                   inputs=(("x", TensorProto.UINT8, [1, 8]),))
    (q,) = s.quantizers
    assert _row(q) == ("dq-input", "DQ", "activation", 8.0, False, False, "per-tensor")


def test_fan_out_counts_each_dequantizer_and_no_dq_after_a_counted_quantizer(tmp_path):
    """One Q read by two DQs: two quantizers; a DQ of a lone Q's integers (through a Reshape): none."""
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "zp"], ["q"]),
             helper.make_node("DequantizeLinear", ["q", "s", "zp"], ["a"], name="dq_a"),
             helper.make_node("DequantizeLinear", ["q", "s", "zp"], ["b"], name="dq_b"),
             helper.make_node("QuantizeLinear", ["a", "s", "zp"], ["q2"], name="lone"),
             helper.make_node("Reshape", ["q2", "shape"], ["r"]),
             helper.make_node("DequantizeLinear", ["r", "s", "zp"], ["c"]),
             helper.make_node("Add", ["b", "c"], ["y"])]
    inits = [_init("s", np.float32(0.1)), _init("zp", np.int8(0)), _init("shape", np.array([1, 8], np.int64))]
    s = _summarize(tmp_path, nodes, inits)
    assert [(q.node, q.form) for q in s.quantizers] == [("dq_a", "q-dq"), ("dq_b", "q-dq"), ("lone", "q")]
    assert s.num_parameters == 0  # the int64 shape is no parameter


def test_dynamic_quantize_and_integer_ops(tmp_path):
    nodes = [helper.make_node("DynamicQuantizeLinear", ["x"], ["xq", "xs", "xz"]),
             helper.make_node("MatMulInteger", ["xq", "B", "xz", "bz"], ["acc"]),
             helper.make_node("Cast", ["acc"], ["y"], to=F)]
    inits = [_init("B", np.ones((8, 4), np.int8)), _init("bz", np.zeros(4, np.int8))]
    s = _summarize(tmp_path, nodes, inits)
    assert [_row(q) for q in s.quantizers] == [
        ("dynamic", "DynamicQuantizeLinear", "activation", 8.0, False, False, "per-tensor"),
        ("integer", "MatMulInteger", "weight", 8.0, True, False, "per-channel(axis=1)"),
    ]
    assert s.num_parameters == 32 and s.parameters_by_role["weight"] == 32  # the zero-point is not a parameter


def test_conv_integer(tmp_path):
    nodes = [helper.make_node("ConvInteger", ["x", "W"], ["acc"]), helper.make_node("Cast", ["acc"], ["y"], to=F)]
    s = _summarize(tmp_path, nodes, [_init("W", np.ones((2, 3, 3, 3), np.uint8))],
                   inputs=(("x", TensorProto.UINT8, [1, 3, 5, 5]),))
    (q,) = s.quantizers
    assert _row(q) == ("integer", "ConvInteger", "weight", 8.0, False, False, "unknown")  # no scale, no zero-point
    assert s.num_parameters == 54


def test_qlinear_conv_weight_bias_and_output(tmp_path):
    nodes = [helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"]),
             helper.make_node("QLinearConv", ["xq", "xs", "xz", "W", "ws", "wz", "ys", "yz", "B"], ["yq"]),
             helper.make_node("DequantizeLinear", ["yq", "ys", "yz"], ["y"])]
    inits = [_init("xs", np.float32(0.1)), _init("xz", np.int8(0)), _init("W", np.ones((2, 3, 3, 3), np.int8)),
             _init("ws", np.full(2, 0.1, np.float32)), _init("wz", np.zeros(2, np.int8)), _init("ys", np.float32(0.2)),
             _init("yz", np.int8(0)), _init("B", np.ones(2, np.int32))]
    s = _summarize(tmp_path, nodes, inits, inputs=(("x", F, [1, 3, 5, 5]),))
    assert [_row(q) for q in s.quantizers] == [
        ("q", "Q", "activation", 8.0, True, False, "per-tensor"),
        ("qlinear", "QLinearConv", "weight", 8.0, True, False, "per-channel(axis=0)"),
        ("qlinear", "QLinearConv", "bias", 32.0, True, False, "per-channel(axis=0)"),
        ("qlinear", "QLinearConv", "activation", 8.0, True, False, "per-tensor"),
    ]  # the final DequantizeLinear reads the QLinearConv's integers: no quantizer of its own
    assert s.parameters_by_role == {"weight": 54, "bias": 2, "unquantized": 0}
    assert s.weight_bits_quantized == 54 * 8 + 2 * 32


def test_qlinear_matmul_and_microsoft_ops(tmp_path):
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"]),
        helper.make_node("QLinearMatMul", ["xq", "s", "z", "B", "bs", "z", "s", "z"], ["m"]),
        helper.make_node("QLinearAdd", ["m", "s", "z", "xq", "s", "z", "s", "z"], ["a"], domain=MS),
        helper.make_node("QGemm", ["a", "s", "z", "G", "gs", "z", "C", "s", "z"], ["g"], domain=MS, transB=1),
        helper.make_node("DequantizeLinear", ["g", "s", "z"], ["d"]),
        helper.make_node("MatMulIntegerToFloat", ["xq", "B", "s", "bs", "z", "z", "fb"], ["y"], domain=MS),
    ]
    inits = [_init("s", np.float32(0.1)), _init("z", np.uint8(128)), _init("B", np.ones((8, 8), np.uint8)),
             _init("bs", np.full(8, 0.1, np.float32)), _init("G", np.ones((8, 8), np.int8)),
             _init("gs", np.float32(0.1)), _init("C", np.ones(8, np.int32)), _init("fb", np.ones(8, np.float32))]
    s = _summarize(tmp_path, nodes, inits, outputs=(("y", F, None), ("d", F, None)), extra_opsets=[(MS, 1)])
    assert [(q.op, q.role, q.granularity) for q in s.quantizers] == [
        ("Q", "activation", "per-tensor"),
        ("QLinearMatMul", "weight", "per-channel(axis=1)"),
        ("QLinearMatMul", "activation", "per-tensor"),
        ("QLinearAdd", "activation", "per-tensor"),  # two activations in, one requantized output
        ("QGemm", "weight", "per-tensor"),
        ("QGemm", "bias", "per-channel(axis=0)"),
        ("QGemm", "activation", "per-tensor"),
        ("MatMulIntegerToFloat", "weight", "per-channel(axis=1)"),  # float output: no output quantizer
    ]
    assert s.quantizer_forms == {"q": 1, "qlinear": 6, "integer": 1}
    # B is read by two ops and counted once; the float bias of MatMulIntegerToFloat is an unquantized parameter
    assert s.parameters_by_role == {"weight": 128, "bias": 8, "unquantized": 8}


def test_weights_in_constant_nodes(tmp_path):
    """Brevitas' QOp export keeps weights in Constant nodes: they are parameters too."""
    w = numpy_helper.from_array(np.ones((4, 8), np.int8), "w")
    nodes = [helper.make_node("Constant", [], ["W"], value=w),
             helper.make_node("DequantizeLinear", ["W", "s"], ["wf"]),
             helper.make_node("MatMul", ["wf", "x"], ["y"])]
    s = _summarize(tmp_path, nodes, [_init("s", np.float32(0.5))], inputs=(("x", F, [8, 1]),))
    assert [q.form for q in s.quantizers] == ["dq-constant"] and s.parameters_by_role["weight"] == 32


# -- the same model in every form: the exporter's QONNX, QCDQ and QOp files ----------------------

def _weights_behind_qonnx_quantizers(path) -> tuple[int, int]:
    """(weight quantizers, their weight elements) of a QONNX file, read with onnx alone:
    QONNX quantizer nodes whose data input is an initializer of rank >= 2."""
    proto = onnx.load(str(path))
    inits = {t.name: t for t in proto.graph.initializer}
    weights = [inits[n.input[0]] for n in proto.graph.node
               if canonical_domain(n.domain) == QONNX and n.input and n.input[0] in inits
               and len(inits[n.input[0]].dims) >= 2]
    return len(weights), sum(int(np.prod(t.dims)) for t in weights)


EXPORTS = [(d, f) for d in CORPUS for f in ("qcdq.onnx", "qop.onnx") if (d / f).is_file()]


@pytest.mark.shared
@pytest.mark.parametrize("folder, name", EXPORTS, ids=lambda p: getattr(p, "name", p))
def test_exporter_forms_report_the_qonnx_weights(folder, name):
    """Brevitas' QCDQ (Q->Clip->DQ, int8 DequantizeLinear weights) and QOp (QLinearConv with
    weights in Constant nodes) exports report the weight quantizers and weight elements that the
    QONNX export of the same module holds."""
    n_weights, n_elements = _weights_behind_qonnx_quantizers(folder / "qonnx.onnx")
    s = summarize(load(folder / name))
    assert s.quantizer_roles.get("weight", 0) == n_weights
    assert s.parameters_by_role["weight"] == n_elements
