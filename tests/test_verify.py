"""``qonnx_tools.verify``: backend choice, the one tolerance rule, the report and its table.

Every expected number below is worked out by hand in the test (array differences,
step counts, percentages), never taken from the code under test.
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from qonnx_tools._ir import ir
from qonnx_tools.errors import BadInputError, ExecutionError
from qonnx_tools.verify import (
    Runner,
    Tolerance,
    compare,
    format_count,
    format_percent,
    format_table,
    output_steps,
    reference_run,
    summary,
    verify,
    verify_against,
)

QONNX = "qonnx.custom_op.general"


# -- models (onnx.helper only) -----------------------------------------------------------------

def _model(nodes, inputs, outputs, inits, opsets=(("", 13),)) -> ir.Model:
    graph = helper.make_graph(nodes, "g", inputs, outputs,
                              [numpy_helper.from_array(np.asarray(a), n) for n, a in inits])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid(d, v) for d, v in opsets])
    proto.ir_version = 8
    return ir.from_proto(proto)


def _add_const(c: float) -> ir.Model:
    """y = x + c (float32, only standard ops)."""
    return _model([helper.make_node("Add", ["x", "c"], ["y"])],
                  [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
                  [("c", np.float32(c))])


def _quant(rounding_mode: str = "ROUND", op: str = "Quant", scale: float = 0.25) -> ir.Model:
    """y = Quant(x, scale, 0, 4 bits, signed) (or BipolarQuant(x, scale)): a QONNX op, step = scale."""
    if op == "BipolarQuant":
        node = helper.make_node(op, ["x", "s"], ["y"], domain=QONNX)
        inits = [("s", np.float32(scale))]
    else:
        node = helper.make_node(op, ["x", "s", "z", "b"], ["y"], domain=QONNX, signed=1, narrow=0,
                                rounding_mode=rounding_mode)
        inits = [("s", np.float32(scale)), ("z", np.float32(0)), ("b", np.float32(4))]
    return _model([node], [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], inits,
                  opsets=(("", 13), (QONNX, 2)))


def _qlinear_matmul_s8u8() -> ir.Model:
    """QLinearMatMul of an int8 activation by uint8 weights: valid ONNX, but onnxruntime (1.2x) has
    no kernel for that type pair, while the executor runs it."""
    inits = [
        ("a_s", np.float32(0.5)), ("a_z", np.int8(0)), ("b", np.arange(12, dtype=np.uint8).reshape(4, 3)),
        ("b_s", np.float32(0.25)), ("b_z", np.uint8(1)), ("y_s", np.float32(1.0)), ("y_z", np.int8(0)),
    ]
    node = helper.make_node("QLinearMatMul", ["a", "a_s", "a_z", "b", "b_s", "b_z", "y_s", "y_z"], ["y"])
    return _model([node], [helper.make_tensor_value_info("a", TensorProto.INT8, [2, 4])],
                  [helper.make_tensor_value_info("y", TensorProto.INT8, [2, 3])], inits)


X = np.array([[0.1, 0.3, -0.6, 5.0]], np.float32)


# -- the defaults ------------------------------------------------------------------------------

def test_defaults_are_the_documented_ones():
    assert Tolerance() == Tolerance(atol=1e-5, rtol=1e-5, max_steps=0.0, max_off_fraction=0.001)


@pytest.mark.parametrize("kwargs", [{"atol": -1.0}, {"rtol": float("nan")}, {"max_steps": -0.5},
                                    {"max_off_fraction": 1.5}, {"max_off_fraction": -0.1}])
def test_illegal_tolerances_are_refused(kwargs):
    with pytest.raises(BadInputError):
        Tolerance(**kwargs)


# -- the rule: each verdict path ---------------------------------------------------------------

def test_exact():
    a = {"y": np.array([1.0, -2.0, np.nan], np.float32)}
    report = compare(a, {"y": a["y"].copy()})
    (out,) = report.outputs
    assert (out.verdict, out.differing, out.elements, out.max_abs, out.max_rel) == ("exact", 0, 3, 0.0, 0.0)
    assert report.ok


def test_float_reassociation_noise_of_2_4e_7_is_accepted():
    # 1.0 + 2 ulps of float32 = 1 + 2 * 2**-23 = 1 + 2**-22 (2.38e-7); 0.0 vs 2**-22 is the near-zero case
    # that a purely relative bound (the old convert --verify: atol 0, rtol 1e-5) refused.
    ref = np.array([1.0, 0.0, 3.0, -2.0], np.float32)
    got = np.array([1.0 + 2**-22, 2**-22, 3.0, -2.0], np.float32)
    (out,) = compare({"y": ref}, {"y": got}).outputs
    assert out.verdict == "tolerance" and out.ok
    assert out.max_abs == 2**-22
    assert out.max_rel == np.inf  # 2**-22 / |0.0|
    assert (out.differing, out.elements, out.outside_tolerance) == (2, 4, 0)
    assert out.max_steps is None  # no step known for this output


def test_float_difference_beyond_atol_rtol_is_a_mismatch():
    ref = np.array([1.0, 2.0], np.float32)
    got = np.array([1.0, 2.001], np.float32)
    (out,) = compare({"y": ref}, {"y": got}).outputs
    # 0.001 > 1e-5 + 1e-5 * 2
    assert out.verdict == "mismatch" and not out.ok
    assert out.max_abs == pytest.approx(0.001, rel=1e-3)
    assert out.max_rel == pytest.approx(0.0005, rel=1e-3)


def test_one_step_on_an_integer_output_is_refused_by_default_and_rtol_does_not_hide_it():
    # int32 values near 1e6: rtol * |a| = 10 would swallow a difference of 1 if applied to integers
    ref = np.array([1_000_000, 5], np.int32)
    got = np.array([1_000_001, 5], np.int32)
    (out,) = compare({"y": ref}, {"y": got}).outputs
    assert out.verdict == "mismatch"
    assert (out.max_abs, out.max_steps, out.differing, out.outside_tolerance) == (1.0, 1.0, 1, 1)
    # accepted only when max_steps allows one step on that share of elements (1 of 2 = 0.5)
    (out,) = compare({"y": ref}, {"y": got}, tolerance=Tolerance(max_steps=1, max_off_fraction=0.5)).outputs
    assert out.verdict == "steps"
    (out,) = compare({"y": ref}, {"y": got}, tolerance=Tolerance(max_steps=1, max_off_fraction=0.49)).outputs
    assert out.verdict == "mismatch"


def test_one_step_int8_difference_refused():
    ref = np.array([[3, -7, 0]], np.int8)
    got = np.array([[3, -6, 0]], np.int8)
    report = compare({"q": ref}, {"q": got})
    assert not report.ok and report.mismatched == ["q"]
    assert report.outputs[0].max_steps == 1.0  # an integer output: one unit is one step


def test_one_step_on_an_integer_valued_float_output_is_refused_even_where_rtol_would_allow_it():
    # a quantized float output with step 1 and values near 1e6: rtol * |a| = 10 > one step,
    # but a whole step is a flipped rounding decision, never float noise (half-step guard)
    ref = np.array([1_000_000.0, 3.0], np.float32)
    got = np.array([1_000_001.0, 3.0], np.float32)
    steps = {"y": np.float32(1.0)}
    (out,) = compare({"y": ref}, {"y": got}, steps=steps).outputs
    assert (out.verdict, out.max_steps, out.outside_tolerance) == ("mismatch", 1.0, 1)
    # without a known step it is plain float data, where 1 <= 1e-5 + 1e-5 * 1e6 holds
    (out,) = compare({"y": ref}, {"y": got}).outputs
    assert out.verdict == "tolerance"


def _grid(n: int, off: dict[int, int], step: float = 0.25):
    """n values on a grid of ``step``, and a copy moved by ``off[i]`` steps at index i."""
    ref = (np.arange(n, dtype=np.float32) % 16 - 8) * np.float32(step)
    got = ref.copy()
    for i, k in off.items():
        got[i] += np.float32(k * step)
    return {"y": ref}, {"y": got}, {"y": np.float32(step)}


def test_steps_within_max_steps_on_at_most_max_off_fraction():
    # 2 of 2000 elements one step off: 0.1 % <= max_off_fraction 0.001
    ref, got, steps = _grid(2000, {5: 1, 1500: -1})
    (out,) = compare(ref, got, steps=steps).outputs
    assert out.verdict == "mismatch"  # default max_steps 0: no step accepted
    (out,) = compare(ref, got, steps=steps, tolerance=Tolerance(max_steps=1)).outputs
    assert out.verdict == "steps" and out.ok
    assert (out.max_abs, out.max_steps, out.differing, out.outside_tolerance) == (0.25, 1.0, 2, 2)
    assert out.pct_differing == 0.1


def test_steps_refused_on_too_many_elements_or_too_many_steps():
    ref, got, steps = _grid(2000, {5: 1, 900: 1, 1500: -1})  # 3 of 2000 = 0.15 % > 0.1 %
    (out,) = compare(ref, got, steps=steps, tolerance=Tolerance(max_steps=1)).outputs
    assert out.verdict == "mismatch"
    ref, got, steps = _grid(2000, {5: 2})  # two steps (0.5) on one element
    (out,) = compare(ref, got, steps=steps, tolerance=Tolerance(max_steps=1)).outputs
    assert (out.verdict, out.max_steps, out.max_abs) == ("mismatch", 2.0, 0.5)
    (out,) = compare(ref, got, steps=steps, tolerance=Tolerance(max_steps=2)).outputs
    assert out.verdict == "steps"


def test_noise_below_half_a_step_on_a_quantized_output_is_tolerance_not_steps():
    ref, got, steps = _grid(8, {})
    got["y"][3] += np.float32(2**-22)  # ref[3] = -1.25: dequantization noise, far below a step of 0.25
    (out,) = compare(ref, got, steps=steps).outputs
    assert out.verdict == "tolerance"
    assert out.max_steps == 2**-20  # 2**-22 / 0.25


def test_nan_on_one_side_only_is_a_mismatch():
    (out,) = compare({"y": np.array([np.nan, 1.0], np.float32)}, {"y": np.array([0.0, 1.0], np.float32)}).outputs
    assert out.verdict == "mismatch" and out.max_abs == np.inf and out.max_rel == np.inf and out.differing == 1
    (out,) = compare({"y": np.array([0.0, 1.0], np.float32)}, {"y": np.array([np.nan, 1.0], np.float32)}).outputs
    assert out.verdict == "mismatch" and out.outside_tolerance == 1


def test_outputs_pair_by_name_else_by_position_and_shapes_must_agree():
    a = {"y": np.zeros(3, np.float32), "z": np.ones(2, np.float32)}
    report = compare(a, {"other_y": np.zeros(3, np.float32), "other_z": np.ones(2, np.float32)})
    assert [o.name for o in report.outputs] == ["y", "z"] and report.ok
    with pytest.raises(BadInputError, match="shape"):
        compare({"y": np.zeros(3, np.float32)}, {"y": np.zeros(4, np.float32)})
    with pytest.raises(BadInputError, match="missing"):
        compare(a, {"y": np.zeros(3, np.float32)})


# -- steps from the model ----------------------------------------------------------------------

def test_step_is_the_quantizer_scale_and_twice_it_for_bipolar():
    assert float(output_steps(_quant(scale=0.25))["y"]) == 0.25
    assert float(output_steps(_quant(op="BipolarQuant", scale=0.5))["y"]) == 1.0
    assert output_steps(_add_const(1.0)) == {}


def test_models_one_step_apart_with_the_step_from_the_quant_scale():
    # x / 0.25 = [0.4, 1.2, -2.4, 20]: ROUND -> [0, 1, -2, 7 (4-bit clip)], FLOOR -> [0, 1, -3, 7]
    report = verify(_quant("ROUND"), _quant("FLOOR"), {"x": X})
    (out,) = report.outputs
    assert (out.verdict, out.max_abs, out.max_steps, out.differing, out.elements) == ("mismatch", 0.25, 1.0, 1, 4)
    report = verify(_quant("ROUND"), _quant("FLOOR"), {"x": X}, tolerance=Tolerance(max_steps=1, max_off_fraction=0.25))
    assert report.outputs[0].verdict == "steps" and report.ok


def test_several_runs_count_every_element_of_every_run():
    # run 1: the -2.4 element differs (ROUND -2, FLOOR -3); run 2: x / 0.25 = [-1.6, 1.6, 3.2, 6.4],
    # ROUND [-2, 2, 3, 6], FLOOR [-2, 1, 3, 6]: one more element; 2 of 8 in all
    second = np.array([[-0.4, 0.4, 0.8, 1.6]], np.float32)
    report = verify(_quant("ROUND"), _quant("FLOOR"), [{"x": X}, {"x": second}])
    (out,) = report.outputs
    assert (report.runs, out.elements, out.differing, out.max_steps) == (2, 8, 2, 1.0)


# -- backends ----------------------------------------------------------------------------------

def test_auto_uses_onnxruntime_for_standard_ops_with_optimisations_off():
    runner = Runner(_add_const(1.0), "auto")
    assert runner.backend == "onnxruntime" and runner.note is None
    level = runner._session.get_session_options().graph_optimization_level
    assert level == ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    np.testing.assert_array_equal(runner.run({"x": X})["y"], X + np.float32(1.0))


def test_auto_falls_back_to_the_executor_on_a_qonnx_op():
    report = verify(_quant(), _quant(), {"x": X}, backend_a="executor", backend_b="auto")
    assert (report.backend_a, report.backend_b) == ("executor", "executor")
    assert len(report.notes) == 1 and "non-standard ops" in report.notes[0] and "Quant" in report.notes[0]
    assert report.outputs[0].verdict == "exact"
    with pytest.raises(ExecutionError, match="onnxruntime cannot load"):
        Runner(_quant(), "onnxruntime")


def test_auto_falls_back_to_the_executor_when_onnxruntime_has_no_kernel():
    model = _qlinear_matmul_s8u8()
    with pytest.raises(ExecutionError, match="QLinearMatMul"):
        Runner(model, "onnxruntime")  # the model has only standard ops, yet onnxruntime cannot load it
    a = np.array([[1, -2, 3, 0], [4, 5, -6, 7]], np.int8)
    report = verify(model, model, {"a": a}, backend_a="executor", backend_b="auto")
    assert report.backend_b == "executor" and report.ok
    assert len(report.notes) == 1 and "fell back to the executor" in report.notes[0]
    assert "QLinearMatMul" in report.notes[0]
    # what the executor computed, by hand: acc = a @ (b - 1) with b - 1 = [[-1,0,1],[2,3,4],[5,6,7],[8,9,10]]
    # = [[10, 12, 14], [32, 42, 52]]; y = round_half_even(acc * 0.5 * 0.25 / 1.0)
    # = round([[1.25, 1.5, 1.75], [4, 5.25, 6.5]]) = [[1, 2, 2], [4, 5, 6]]
    runner = Runner(model, "auto")
    np.testing.assert_array_equal(runner.run({"a": a})["y"], np.array([[1, 2, 2], [4, 5, 6]], np.int8))


def test_unknown_backend_is_bad_input():
    with pytest.raises(BadInputError, match="backend"):
        Runner(_add_const(1.0), "tensorrt")


def test_reference_run_then_verify_against_a_transformed_model():
    model = _add_const(1.0)
    ref = reference_run(model, {"x": X})
    assert ref.backend == "executor"
    # "transform" in place: the constant gains 2 ulps (float noise, accepted) ...
    model.graph.initializers["c"].const_value = ir.tensor(np.float32(1.0 + 2**-22))
    report = verify_against(ref, model, backend="executor")
    assert report.ok and report.outputs[0].verdict == "tolerance"
    # ... or a real change
    model.graph.initializers["c"].const_value = ir.tensor(np.float32(1.5))
    report = verify_against(ref, model, backend="auto")
    assert report.backend_b == "onnxruntime" and not report.ok and report.outputs[0].max_abs == 0.5


# -- formatting --------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "count,total,text",
    [
        (0, 10, "0 (0.00 %)"),
        (10, 10, "10 (100.00 %)"),
        (1, 3, "1 (33.33 %)"),
        (1, 8, "1 (12.50 %)"),
        (3, 2_800_000, "3 (0.0001 %)"),  # 1.07e-4 %: never "0.00 %" when elements differ
        (2_799_997, 2_800_000, "2799997 (99.9999 %)"),  # 99.99989 %: never "100.00 %" when some agree
        (1, 10**9, "1 (0.0000001 %)"),
        (0, 0, "0 (0.00 %)"),
    ],
)
def test_count_and_percentage(count, total, text):
    assert format_count(count, total) == text


def test_percent_of_the_default_fraction():
    assert format_percent(0.001) == "0.10 %"


def test_table_never_shows_a_mismatch_as_100_percent_exact():
    ref = np.full(1_000_000, 4, np.int8)
    got = ref.copy()
    got[[1, 500, 999_999]] = 5  # 3 of 1e6 = 0.0003 %, each off by 1 (rel 1/4)
    report = compare({"82": ref}, {"82": got}, backend_a="executor", backend_b="onnxruntime")
    text = format_table(report)
    lines = text.splitlines()
    header = lines[1].split()
    assert header[:2] == ["output", "backend"] and "elements differing" in lines[1]
    assert lines[1].rstrip().endswith("verdict")
    row = lines[2]
    assert row.split()[:6] == ["82", "executor", "onnxruntime", "1", "0.25", "1"]
    assert "3 (0.0003 %)" in row and row.rstrip().endswith("MISMATCH")
    assert "0.00 %" not in row and "100" not in row
    assert summary(report).startswith("output '82': max abs 1") and "MISMATCH" in summary(report)


def test_table_names_unquantized_outputs_and_fallback_notes():
    report = verify(_quant(), _quant("FLOOR"), {"x": X})
    text = format_table(report, indent="  ")
    assert text.startswith("  verify: A executor vs B executor; agree when exact")
    assert "no quantization step accepted" in text
    assert "note: B: auto chose the executor" in text
    assert "1 (25.00 %)" in text  # one element of four
    float_report = compare({"y": np.array([1.0], np.float32)}, {"y": np.array([2.0], np.float32)})
    ftext = format_table(float_report)
    assert " n/a " in ftext and "max steps n/a: the output is not quantized" in ftext


def test_to_dict_is_plain_json():
    import json

    report = compare({"y": np.array([0.0, 1.0], np.float32)}, {"y": np.array([1.0, 1.0], np.float32)})
    data = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    (out,) = data["outputs"]
    assert data["ok"] is False and data["tolerance"] == {"atol": 1e-5, "rtol": 1e-5, "max_steps": 0.0,
                                                         "max_off_fraction": 0.001}
    assert out["max_rel"] == "inf" and out["max_abs"] == 1.0 and out["differing"] == 1 and out["pct_differing"] == 50.0
    assert out["verdict"] == "mismatch" and out["shape"] == [2]
