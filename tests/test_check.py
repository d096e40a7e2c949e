"""qonnx check: every structural and semantic problem is listed, with node and op; load hardening."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from qonnx_tools import model_io, validate
from qonnx_tools.check import ERROR, ONNX_CHECKER, WARNING, check_file, check_proto
from qonnx_tools.cli.main import main
from qonnx_tools.errors import BadInputError, ModelLoadError
from qonnx_tools.testing import shared_models

QONNX = "qonnx.custom_op.general"


def _model(nodes, inits=(), *, inputs=None, outputs=None, value_info=(), opsets=None) -> onnx.ModelProto:
    inputs = inputs or [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])]
    outputs = outputs or [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])]
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(inits), value_info=list(value_info))
    opsets = opsets or {"": 13, QONNX: 1}
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid(d, v) for d, v in opsets.items()])
    model.ir_version = 8
    return model


def _const(name: str, value, dtype=np.float32) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(value, dtype), name)


def _quant(scale=0.5, zeropt=0.0, bits=4.0, x_shape=(1, 4), opsets=None, **attrs) -> onnx.ModelProto:
    node = helper.make_node("Quant", ["x", "s", "z", "b"], ["y"], name="q", domain=QONNX, **attrs)
    return _model(
        [node],
        [_const("s", scale), _const("z", zeropt), _const("b", bits)],
        inputs=[helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x_shape))],
        outputs=[helper.make_tensor_value_info("y", TensorProto.FLOAT, list(x_shape))],
        opsets=opsets,
    )


def _findings(model: onnx.ModelProto, tmp_path: Path, **kwargs):
    return check_proto(model, tmp_path / "m.onnx", **kwargs)


def _messages(findings, severity=ERROR) -> list[str]:
    return [f.message for f in findings if f.severity == severity]


def _own(findings):
    """The findings of our own rules (without what onnx.checker reported)."""
    return [f for f in findings if not f.message.startswith(ONNX_CHECKER)]


def _from_onnx(findings):
    return [f for f in findings if f.message.startswith(ONNX_CHECKER)]


def _one_error(model, tmp_path, fragment: str, *, node: str | None = "q"):
    """Exactly one error of our own rules, containing ``fragment`` (onnx.checker may add its own)."""
    errors = [f for f in _own(_findings(model, tmp_path)) if f.severity == ERROR]
    assert len(errors) == 1, errors
    assert fragment in errors[0].message, errors[0]
    if node is not None:
        assert errors[0].node == node
    return errors[0]


# -- clean models -------------------------------------------------------------------------------


def test_valid_quant_model_has_no_findings(tmp_path):
    assert _findings(_quant(), tmp_path) == []


#: zoo files that use a QONNX domain alias without importing it: onnx.checker refuses them
#: (we read them at QONNX opset 1); the only finding they have is onnx.checker's
_NO_DOMAIN_IMPORT = {
    "tfc/TFC_1W1A.onnx": "onnx.checker: No opset import for domain 'onnx.brevitas'",
    "tfc/TFC_2W2A.onnx": "onnx.checker: No opset import for domain 'onnx.brevitas'",
    "kws/kwsmlp_w3a3.onnx": "onnx.checker: No opset import for domain 'onnx.brevitas'",
    "jet_tagging/qkeras_jettagging.onnx": "onnx.checker: No opset import for domain 'finn.custom_op.general'",
}


def test_shipped_models_are_clean():
    for path in sorted(Path(__file__).resolve().parents[1].joinpath("models").rglob("*.onnx")):
        findings = check_file(path)
        known = _NO_DOMAIN_IMPORT.get(f"{path.parent.name}/{path.name}")
        if known:
            assert len(findings) == 1 and findings[0].severity == ERROR, (path, findings)
            assert findings[0].message.startswith(known), findings
        else:
            assert findings == [], path


#: corpus models whose findings are real defects of the file, not false positives
_KNOWN_DEFECTS = {
    # float8 zero-points need QuantizeLinear-19, the file imports ai.onnx 18 (onnxruntime rejects it too)
    "fp8_ocp/qcdq_dynamo.onnx": "has unsupported type: tensor(float8e",
    **_NO_DOMAIN_IMPORT,
}


@pytest.mark.shared
@pytest.mark.parametrize("path", shared_models(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_shared_corpus_has_no_false_positives(path):
    errors = [f for f in check_file(path) if f.severity == ERROR]
    known = _KNOWN_DEFECTS.get(f"{path.parent.name}/{path.name}")
    if known:
        assert errors and all(known in f.message for f in errors), errors
    else:
        assert errors == [], errors


# -- QONNX parameters ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        (dict(bits=0.0), "bitwidth must be an integer in 1..64, got 0"),
        (dict(bits=65.0), "bitwidth must be an integer in 1..64, got 65"),
        (dict(bits=2.5), "got 2.5"),
        (dict(bits=np.inf), "got inf"),
        (dict(bits=1.0, narrow=1), "single value (0)"),
        (dict(scale=0.0), "scale must be finite and > 0, got 0"),
        (dict(scale=-0.5), "scale must be finite and > 0, got -0.5"),
        (dict(scale=np.inf), "got inf"),
        (dict(scale=np.nan), "got nan"),
        (dict(scale=[0.5, -1.0, 0.5, 0.0]), "[-1, 0] (2 of 4 elements)"),
        (dict(zeropt=np.nan), "zeropt must be finite"),
        (dict(zeropt=8.0), "zeropt must lie in the signed integer range"),
        (dict(zeropt=-8.0, narrow=1), "signed narrow"),
        (dict(zeropt=-1.0, signed=0), "unsigned"),
        (dict(zeropt=16.0, signed=0), "unsigned integer range [0, 15] of bitwidth, got 16"),
        (dict(rounding_mode="SIDEWAYS"), "attribute 'rounding_mode'='SIDEWAYS' is not one of"),
        (dict(signed=2), "attribute 'signed'=2 is not one of 0, 1"),
        (dict(scale=np.ones(3)), "scale of shape (3,) does not broadcast to X's shape (1, 4)"),
        (dict(bits=np.full((2, 4), 4.0)), "bitwidth of shape (2, 4) does not broadcast"),
    ],
)
def test_int_quant_parameters(tmp_path, kwargs, fragment):
    _one_error(_quant(**kwargs), tmp_path, fragment)


@pytest.mark.parametrize("kwargs", [dict(bits=1.0), dict(bits=1.0, signed=0), dict(zeropt=15.0, signed=0),
                                    dict(zeropt=-7.0, narrow=1), dict(bits=64.0), dict(scale=np.full(4, 0.1)),
                                    dict(rounding_mode="half_even"), dict(x_shape=("N", 4))])
def test_int_quant_legal_corners(tmp_path, kwargs):
    assert _findings(_quant(**kwargs), tmp_path) == []


def test_wrong_input_count(tmp_path):
    model = _quant()
    del model.graph.node[0].input[3]
    _one_error(model, tmp_path, "takes inputs (X, scale, zeropt, bitwidth), node has 3")


def test_parameter_from_constant_node(tmp_path):
    model = _quant()
    model.graph.initializer.pop(0)  # scale now comes from a Constant node
    model.graph.node.insert(0, helper.make_node("Constant", [], ["s"], name="c", value=_const("v", -2.0)))
    _one_error(model, tmp_path, "scale must be finite and > 0, got -2")


def test_string_parameter(tmp_path):
    model = _quant()
    model.graph.initializer[0].CopyFrom(helper.make_tensor("s", TensorProto.STRING, [], [b"big"]))
    _one_error(model, tmp_path, "scale 's' must be numeric, got STRING")


def _node_model(op_type: str, inits: dict, attrs=None, *, x_shape=(1, 4), opsets=None) -> onnx.ModelProto:
    names = ["x", *inits]
    node = helper.make_node(op_type, names, ["y"], name="q", domain=QONNX, **(attrs or {}))
    return _model(
        [node], [_const(k, v) for k, v in inits.items()],
        inputs=[helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x_shape))],
        # onnx.checker wants graph outputs with a shape; it does not infer QONNX ops, so X's shape passes
        outputs=[helper.make_tensor_value_info("y", TensorProto.FLOAT, list(x_shape))],
        opsets=opsets,
    )


def test_bipolar_quant_scale(tmp_path):
    assert _findings(_node_model("BipolarQuant", {"s": 1.0}), tmp_path) == []
    _one_error(_node_model("BipolarQuant", {"s": 0.0}), tmp_path, "scale must be finite and > 0")


def test_trunc_v1_needs_in_at_least_out(tmp_path):
    ok = {"s": 1.0, "z": 0.0, "ib": 8.0, "ob": 4.0}
    assert _findings(_node_model("Trunc", ok), tmp_path) == []
    _one_error(_node_model("Trunc", {**ok, "ib": 4.0, "ob": 8.0}), tmp_path,
               "in_bitwidth must be >= out_bitwidth (truncation drops bits), got in_bitwidth 4 < out_bitwidth 8")
    _one_error(_node_model("Trunc", {**ok, "ob": 0.0}), tmp_path, "out_bitwidth must be an integer in 1..64")


def test_trunc_v2_widening_is_a_warning(tmp_path):
    # Brevitas exports this (TruncAvgPool over a narrow accumulator); in_bitwidth does not enter v2's arithmetic
    inits = {"s": 1.0, "z": 0.0, "ib": 6.0, "os": 0.25, "ob": 8.0}
    findings = _findings(_node_model("Trunc", inits, opsets={"": 13, QONNX: 2}), tmp_path)
    assert [f.severity for f in findings] == [WARNING]
    assert "nothing is truncated" in findings[0].message
    _one_error(_node_model("Trunc", {**inits, "os": 0.0}, opsets={"": 13, QONNX: 2}), tmp_path,
               "out_scale must be finite and > 0")


@pytest.mark.parametrize(
    "change, fragment",
    [
        (dict(e=0.0), "exponent_bitwidth must be an integer in 1..11 (a positive integer), got 0"),
        (dict(m=0.0), "mantissa_bitwidth must be an integer in 1..52 (a positive integer), got 0"),
        (dict(m=-1.0), "got -1"),
        (dict(m=2.5), "got 2.5"),
        (dict(bias=0.5), "exponent_bias must be an integer"),
        (dict(mx=0.0), "max_val must be > 0, got 0"),
        (dict(mx=np.nan), "max_val must be > 0, got nan"),
        (dict(s=-1.0), "scale must be finite and > 0"),
    ],
)
def test_float_quant_parameters(tmp_path, change, fragment):
    inits = {"s": 1.0, "e": 4.0, "m": 3.0, "bias": 7.0, "mx": 448.0, **change}
    _one_error(_node_model("FloatQuant", inits), tmp_path, fragment)


def test_float_quant_legal_and_saturation_attributes(tmp_path):
    inits = {"s": 1.0, "e": 4.0, "m": 3.0, "bias": 7.0, "mx": 448.0}
    assert _findings(_node_model("FloatQuant", inits), tmp_path) == []
    assert _findings(_node_model("FloatQuant", inits, {"saturation": 0, "has_nan": 1}), tmp_path) == []
    _one_error(_node_model("FloatQuant", inits, {"saturation": 0}), tmp_path, "saturation=0 needs")


def test_multithreshold(tmp_path):
    x4 = dict(x_shape=(1, 4, 2, 2))
    assert _findings(_node_model("MultiThreshold", {"t": np.zeros((4, 3))}, **x4), tmp_path) == []
    assert _findings(_node_model("MultiThreshold", {"t": np.zeros((1, 3))}, **x4), tmp_path) == []
    _one_error(_node_model("MultiThreshold", {"t": np.zeros((3, 3))}, **x4), tmp_path,
               "thresholds have 3 rows but X has 4 channels on axis 1")
    _one_error(_node_model("MultiThreshold", {"t": np.zeros((2, 2, 3))}, **x4), tmp_path, "must be (C, T)")
    _one_error(_node_model("MultiThreshold", {"t": np.zeros((4, 3))}, {"data_layout": "NHW"}, **x4), tmp_path,
               "data_layout")
    _one_error(_node_model("MultiThreshold", {"t": np.zeros((4, 3))}, {"out_dtype": "INT999"}, **x4), tmp_path,
               "out_dtype")
    warn = _findings(_node_model("MultiThreshold", {"t": np.full((1, 3), np.nan)}, **x4), tmp_path)
    assert [(f.severity, f.message) for f in warn] == [(WARNING, "thresholds contain NaN (never reached)")]


def test_qonnx_op_not_implemented_here_is_a_warning(tmp_path):
    findings = _findings(_node_model("XnorPopcountMatMul", {"w": np.ones((4, 4))}), tmp_path)
    assert [f.severity for f in findings] == [WARNING]
    assert "XnorPopcountMatMul is a qonnx operator this package does not implement" in findings[0].message


def test_made_up_name_in_the_qonnx_domain_is_an_error(tmp_path):
    _one_error(_node_model("XnorPopcount", {"w": np.ones((4, 4))}), tmp_path,
               "no operator XnorPopcount exists in the QONNX domain")


# -- standard ops and types ---------------------------------------------------------------------


def test_add_of_float_and_int(tmp_path):
    model = _model([helper.make_node("Add", ["x", "i"], ["y"], name="add")], [_const("i", np.ones((1, 4)), np.int64)])
    error = _one_error(model, tmp_path, "inconsistent type tensor(int64)", node="add")
    assert error.op == "Add"
    (onnx_error,) = _from_onnx(_findings(model, tmp_path))  # onnx's own inference says the same
    assert (onnx_error.severity, onnx_error.node, onnx_error.op) == (ERROR, "add", "Add")
    assert "B has inconsistent type tensor(int64)" in onnx_error.message


def test_declared_type_contradicts_the_op(tmp_path):
    model = _model([helper.make_node("Relu", ["x"], ["r"], name="relu"), helper.make_node("Identity", ["r"], ["y"], name="id")],
                   value_info=[helper.make_tensor_value_info("r", TensorProto.INT64, [1, 4])])
    _one_error(model, tmp_path, "output 'r' is declared INT64 but Relu produces FLOAT", node="relu")
    # onnx lists both ends of the conflict, one finding per inference error, each naming its node
    listed = [(f.node, f.message) for f in _from_onnx(_findings(model, tmp_path))]
    assert listed == [
        ("relu", f"{ONNX_CHECKER}[TypeInferenceError] Inferred elem type differs from existing elem type: (1) vs (7)"),
        ("id", f"{ONNX_CHECKER}[TypeInferenceError] Inferred elem type differs from existing elem type: (7) vs (1)"),
    ]


def test_quantizer_output_declared_integer(tmp_path):
    model = _quant()
    model.graph.output[0].type.tensor_type.elem_type = TensorProto.INT8
    _one_error(model, tmp_path, "output 'y' is declared INT8 but Quant produces FLOAT")


def test_standard_op_schema_problems(tmp_path):
    model = _model([
        helper.make_node("Relu", ["x", "x"], ["a"], name="two_inputs"),
        helper.make_node("Gemm", ["x"], ["b"], name="one_input"),
        helper.make_node("Relu", ["x"], ["c"], name="extra_attr", bogus=1),
        helper.make_node("NoSuchOp", ["x"], ["d"], name="unknown"),
        helper.make_node("Flatten", ["x"], ["y"], name="flatten"),
    ])
    findings = _findings(model, tmp_path)
    errors = {f.node: f.message for f in _own(findings) if f.severity == ERROR}
    # onnx.checker stops at its first bad node
    assert [(f.node, f.op) for f in _from_onnx(findings)] == [("two_inputs", "Relu")]
    assert "has input size 2 not in range [min=1, max=1]" in _from_onnx(findings)[0].message
    assert "has 2 inputs; Relu-" in errors["two_inputs"]
    assert "has 1 inputs; Gemm-" in errors["one_input"]
    assert "attribute 'bogus' is not defined for Relu" in errors["extra_attr"]
    assert "no operator ai.onnx.NoSuchOp exists at opset 13" in errors["unknown"]
    assert "flatten" not in errors


def test_unknown_domain_and_future_opset_are_warnings(tmp_path):
    model = _model([helper.make_node("Secret", ["x"], ["y"], name="s", domain="com.example")],
                   opsets={"": 9999, "com.example": 1})
    findings = _findings(model, tmp_path)
    assert {f.severity for f in findings} == {WARNING}
    assert any("newer than onnx knows" in f.message for f in findings)
    assert any("unknown operator com.example:Secret" in f.message for f in findings)


# -- structure: every problem, not the first ----------------------------------------------------


def test_every_structural_problem_is_listed(tmp_path):
    model = _model(
        [
            helper.make_node("Relu", ["x"], ["a"], name="n1"),
            helper.make_node("Relu", ["a"], ["a"], name="n2"),  # a produced twice
            helper.make_node("Add", ["a", "missing"], ["b"], name="n3"),  # missing producer
            helper.make_node("Relu", ["c"], ["d"], name="n3"),  # duplicate name, cycle d <-> c
            helper.make_node("Relu", ["d"], ["c"], name="n5"),
            helper.make_node("Relu", ["b"], ["y"], name="n6", extra=1),
        ],
        [_const("W", [[1.0]]), _const("W", [[2.0]])],
        outputs=[helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4]),
                 helper.make_tensor_value_info("ghost", TensorProto.FLOAT, [1])],
        value_info=[helper.make_tensor_value_info("b", TensorProto.FLOAT, [-1, 4])],
    )
    findings = _findings(model, tmp_path)
    text = "\n".join(f.describe() for f in findings)
    for fragment in [
        "node 'n2' (Relu): output 'a' is already produced by node 'n1'",
        "node 'n3' (Add): input 'missing' is produced by no node",
        "node name 'n3' is used by 2 nodes",
        "has a cycle: 'n5' -> 'n3' -> 'n5'",
        "initializer 'W' is defined twice",
        "graph output 'ghost' is produced by no node",
        "value_info 'b' declares a negative dimension in shape (-1, 4)",
        "attribute 'extra' is not defined for Relu",
    ]:
        assert fragment in text, text


def test_subgraph_nodes_are_checked(tmp_path):
    bad = helper.make_node("Quant", ["x", "s", "z", "b0"], ["t"], name="inner_q", domain=QONNX)
    then_graph = helper.make_graph([bad], "then", [], [helper.make_tensor_value_info("t", TensorProto.FLOAT, [1, 4])],
                                   [_const("b0", 0.0)])
    else_graph = helper.make_graph([helper.make_node("Identity", ["x"], ["e"], name="inner_id")], "else", [],
                                   [helper.make_tensor_value_info("e", TensorProto.FLOAT, [1, 4])])
    model = _model([helper.make_node("If", ["cond"], ["y"], name="if", then_branch=then_graph, else_branch=else_graph)],
                   [_const("s", 0.5), _const("z", 0.0), _const("cond", True, np.bool_)])
    error = _one_error(model, tmp_path, "bitwidth must be an integer in 1..64, got 0", node="if/inner_q")
    assert error.op == f"{QONNX}:Quant"


# -- onnx.checker -------------------------------------------------------------------------------------

CHANNELS_LAST = "qonnx.custom_op.channels_last"


def _channels_last_pool(opsets: dict) -> onnx.ModelProto:
    """A QONNX Quant, then a channels-last MaxPool: valid for onnx only when both domains are imported."""
    quant = helper.make_node("Quant", ["x", "s", "z", "b"], ["q"], name="q", domain=QONNX, signed=1, narrow=0,
                             rounding_mode="ROUND")
    pool = helper.make_node("MaxPool", ["q"], ["y"], name="pool_cl", domain=CHANNELS_LAST, kernel_shape=[2, 2],
                            strides=[2, 2])
    return _model(
        [quant, pool], [_const("s", 0.5), _const("z", 0.0), _const("b", 4.0)],
        inputs=[helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 4, 3])],
        outputs=[helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 2, 3])],
        opsets=opsets,
    )


def test_missing_domain_import_is_reported(tmp_path, capsys):
    good = _channels_last_pool({"": 13, QONNX: 2, CHANNELS_LAST: 1})
    onnx.checker.check_model(good, full_check=True)
    assert _findings(good, tmp_path) == []

    bad = _channels_last_pool({"": 13, QONNX: 2})
    with pytest.raises(onnx.checker.ValidationError, match=f"No opset import for domain '{CHANNELS_LAST}'"):
        onnx.checker.check_model(bad, full_check=True)
    assert _own(_findings(bad, tmp_path)) == []  # our own rules have nothing against it
    (finding,) = _findings(bad, tmp_path)
    assert (finding.severity, finding.node, finding.op) == (ERROR, "pool_cl", f"{CHANNELS_LAST}:MaxPool")
    assert finding.message.startswith(f"{ONNX_CHECKER}No opset import for domain '{CHANNELS_LAST}'")

    path = tmp_path / "no_import.onnx"
    path.write_bytes(bad.SerializeToString())
    assert main(["check", str(path)]) == 1
    captured = capsys.readouterr()
    assert (f"error    node 'pool_cl' ({CHANNELS_LAST}:MaxPool): onnx.checker: No opset import for domain "
            f"'{CHANNELS_LAST}'") in captured.out
    assert f"{path}: 1 error, 0 warnings" in captured.out
    assert captured.err == f"error: {path}: 1 error found\n"


def test_every_inference_error_of_onnx_is_a_line(tmp_path):
    model = _model(
        [helper.make_node("MatMul", ["x", "w"], ["a"], name="mm1"),
         helper.make_node("MatMul", ["x", "w"], ["b"], name="mm2"),
         helper.make_node("Relu", ["x"], ["y"])],
        [_const("w", np.zeros((5, 3)))],
        outputs=[helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 3]) for n in ("a", "b", "y")],
        opsets={"": 13},
    )
    listed = [(f.severity, f.node, f.op, f.message) for f in _from_onnx(_findings(model, tmp_path))]
    incompatible = f"{ONNX_CHECKER}[ShapeInferenceError] Incompatible dimensions for matrix multiplication"
    assert listed == [
        (ERROR, "mm1", "MatMul", incompatible),
        (ERROR, "mm2", "MatMul", incompatible),
        (ERROR, None, None, f"{ONNX_CHECKER}Relu node without a name: [ShapeInferenceError] Inferred shape and "
                            "existing shape differ in dimension 1: (4) vs (3)"),
    ]


def test_onnx_checker_finds_external_data_beside_the_file(tmp_path, monkeypatch):
    folder = tmp_path / "model"
    folder.mkdir()
    model = _model([helper.make_node("Add", ["x", "w"], ["y"], name="add")], [_const("w", np.ones((1, 4)))], opsets={"": 13})
    onnx.save(model, folder / "ext.onnx", save_as_external_data=True, location="ext.onnx.data", size_threshold=0)
    monkeypatch.chdir(tmp_path)  # onnx would look for the data in the working directory if given the proto
    assert check_file(folder / "ext.onnx") == []
    # a proto with external data and no file to find the data beside: not checked, and said so
    proto = onnx.load(str(folder / "ext.onnx"), load_external_data=False)
    findings = check_proto(proto, tmp_path / "elsewhere" / "ext.onnx")
    assert any(f.severity == WARNING and f.message.startswith(f"{ONNX_CHECKER}not run: the model has external data")
               for f in findings), findings
    assert not [f for f in _from_onnx(findings) if f.severity == ERROR]


def test_onnx_checker_skips_protos_too_large_to_serialise(tmp_path, monkeypatch):
    import qonnx_tools.check as check_module

    monkeypatch.setattr(check_module, "MAX_PROTO_FILE_BYTES", 64)  # stands for 2 GiB
    findings = _findings(_channels_last_pool({"": 13, QONNX: 2}), tmp_path)
    assert [(f.severity, f.message.split(";")[0]) for f in findings] == [
        (WARNING, f"{ONNX_CHECKER}not run: the model serialises to {_channels_last_pool({'': 13, QONNX: 2}).ByteSize()} "
                  "bytes, more than a protobuf can hold (2 GiB)")
    ]


def test_unreadable_file_raises_instead_of_findings(tmp_path):
    path = tmp_path / "junk.onnx"
    path.write_bytes(b"\x00\xff" * 10)
    with pytest.raises(ModelLoadError, match="junk.onnx"):
        check_file(path)


# -- the CLI ------------------------------------------------------------------------------------------


def test_cli_exit_codes_and_json(tmp_path, capsys):
    good, bad, junk = tmp_path / "good.onnx", tmp_path / "bad.onnx", tmp_path / "junk.onnx"
    good.write_bytes(_quant().SerializeToString())
    bad.write_bytes(_quant(scale=-1.0, bits=0.0).SerializeToString())
    junk.write_bytes(b"junk")
    assert main(["check", str(good)]) == 0
    assert "0 errors, 0 warnings" in capsys.readouterr().out
    assert main(["check", str(bad)]) == 1
    captured = capsys.readouterr()
    assert captured.err == f"error: {bad}: 2 errors found\n"
    assert "error    node 'q' (qonnx.custom_op.general:Quant): scale must be finite and > 0, got -1" in captured.out
    assert main(["check", "--json", str(bad)]) == 1
    listed = json.loads(capsys.readouterr().out)
    assert [f["message"].split(" must")[0] for f in listed] == ["scale", "bitwidth"]
    assert all(f == {"severity": "error", "node": "q", "op": f"{QONNX}:Quant", "message": f["message"]} for f in listed)
    assert main(["check", str(junk)]) == 2
    assert capsys.readouterr().err.startswith(f"error: {junk}: not a readable ONNX model")


# -- load hardening (the part of check that load shares) ---------------------------------------------


def _external_model(tmp_path: Path, location: str, data: bytes | None, **entries) -> Path:
    model = _quant()
    scale = model.graph.initializer[0]
    scale.ClearField("raw_data")
    scale.ClearField("float_data")
    scale.data_location = TensorProto.EXTERNAL
    scale.external_data.add(key="location", value=location)
    for key, value in entries.items():
        scale.external_data.add(key=key, value=str(value))
    if data is not None:
        (tmp_path / "params.bin").write_bytes(data)
    path = tmp_path / "ext.onnx"
    path.write_bytes(model.SerializeToString())
    return path


def test_external_parameters_are_read_and_checked(tmp_path):
    data = np.array([7.0, -0.25], np.float32).tobytes()
    path = _external_model(tmp_path, "params.bin", data, offset=4, length=4)
    assert model_io.load(path).graph.initializers["s"].const_value.numpy() == np.float32(-0.25)
    assert [f.message for f in check_file(path)] == ["scale must be finite and > 0, got -0.25"]


@pytest.mark.parametrize(
    "location, entries, fragment",
    [
        ("/etc/hostname", {}, "an absolute path"),
        ("../params.bin", {}, "contains '..'"),
        ("sub/../../params.bin", {}, "contains '..'"),
        ("nothing.bin", {}, "does not exist"),
        ("params.bin", {"offset": 8}, "fewer than offset 8 + length 4"),
        ("params.bin", {"offset": "x"}, "offset 'x' is not a non-negative integer"),
        ("params.bin", {"length": 3}, "length 3 disagrees with the 4 bytes"),
    ],
)
def test_external_data_is_refused_before_reading(tmp_path, location, entries, fragment):
    path = _external_model(tmp_path, location, b"\x00\x00\x80\x3e", **entries)
    with pytest.raises(ModelLoadError) as info:
        model_io.load(path)
    message = str(info.value)
    assert message.startswith(f"{path}: initializer 's' has external data") and fragment in message
    assert fragment in " ".join(f.message for f in check_file(path))


def test_external_symlink_out_of_the_directory(tmp_path):
    outside = tmp_path / "outside.bin"
    outside.write_bytes(b"\x00\x00\x80\x3e")
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "link.bin").symlink_to(outside)
    path = _external_model(model_dir, "link.bin", None)
    with pytest.raises(ModelLoadError, match="resolves outside the model's directory"):
        model_io.load(path)


def test_max_tensor_bytes(tmp_path, monkeypatch):
    path = tmp_path / "m.onnx"
    model = _quant(x_shape=(1, 4))
    model.graph.initializer.append(_const("big", np.zeros((64, 64))))
    path.write_bytes(model.SerializeToString())
    model_io.load(path)
    with pytest.raises(ModelLoadError, match=r"initializer 'big' declares shape \(64, 64\) FLOAT of 16.0 KiB"):
        model_io.load(path, max_tensor_bytes=1024)
    monkeypatch.setenv(validate.MAX_TENSOR_BYTES_ENV, "1024")
    with pytest.raises(ModelLoadError, match="max_tensor_bytes"):
        model_io.load(path)
    monkeypatch.setenv(validate.MAX_TENSOR_BYTES_ENV, "lots")
    with pytest.raises(BadInputError, match="QONNX_TOOLS_MAX_TENSOR_BYTES"):
        model_io.load(path)


def test_load_keeps_normalising_and_accepts_unsorted_graphs(tmp_path):
    model = _model([helper.make_node("Relu", ["a"], ["y"], name="second"), helper.make_node("Relu", ["x"], ["a"], name="first")],
                   opsets={"": 13})
    path = tmp_path / "unsorted.onnx"
    path.write_bytes(model.SerializeToString())
    loaded = model_io.load(path)
    assert [n.name for n in loaded.graph] == ["second", "first"]
    # our rules accept the order; onnx.checker does not
    (finding,) = check_file(path)
    assert finding.severity == ERROR
    assert finding.message.startswith(f"{ONNX_CHECKER}Nodes in a graph must be topologically sorted, however input 'a'")
