"""activations-to-uint8: exact (onnxruntime, optimisations off, before vs after), only where safe."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from qonnx_tools._ir import ir
from qonnx_tools.passes.activations_to_uint8 import SAFE_WEIGHT_CODE, ActivationsToUint8
from qonnx_tools.runtime import ort_session


def _model(*, zp: int, lo: int | None, hi: int | None, weight_max: int, scale: float = 0.05,
           output_ints: bool = False) -> onnx.ModelProto:
    """x -> Q(int8, scale, zp) -> [Clip lo..hi] -> DQ -> MatMul(DQ(w codes)) -> y."""
    rng = np.random.default_rng(weight_max)
    codes = rng.integers(-weight_max, weight_max + 1, size=(8, 4)).astype(np.int8)
    codes[0, 0] = weight_max
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "zp"], ["q"], name="q")]
    last = "q"
    if lo is not None:
        nodes.append(helper.make_node("Clip", ["q", "lo", "hi"], ["c"], name="clip"))
        last = "c"
    nodes += [
        helper.make_node("DequantizeLinear", [last, "s", "zp"], ["a"], name="dq"),
        helper.make_node("DequantizeLinear", ["w", "sw", "zw"], ["wf"], name="dq_w"),
        helper.make_node("MatMul", ["a", "wf"], ["y"], name="mm"),
    ]
    inits = [numpy_helper.from_array(np.float32(scale), "s"), numpy_helper.from_array(np.int8(zp), "zp"),
             numpy_helper.from_array(codes, "w"), numpy_helper.from_array(np.float32(0.01), "sw"),
             numpy_helper.from_array(np.int8(0), "zw")]
    if lo is not None:
        inits += [numpy_helper.from_array(np.int8(lo), "lo"), numpy_helper.from_array(np.int8(hi), "hi")]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, 4])]
    if output_ints:
        outputs.append(helper.make_tensor_value_info(last, TensorProto.INT8, [3, 8]))
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 8])],
                              outputs, inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def _run(proto: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    return ort_session(proto).run(["y"], {"x": x})[0]


def _shift(proto: onnx.ModelProto) -> tuple[onnx.ModelProto, ActivationsToUint8]:
    model = ir.serde.deserialize_model(proto)
    pass_ = ActivationsToUint8()
    pass_(model)
    return ir.serde.serialize_model(model), pass_


@settings(max_examples=60, deadline=None)
@given(zp=st.integers(-128, 127), bounds=st.one_of(st.none(), st.tuples(st.integers(-128, 127), st.integers(-128, 127))),
       scale=st.sampled_from([0.05, 0.125, 1.0, 3e-3]), seed=st.integers(0, 2**16))
def test_exact_in_onnxruntime(zp, bounds, scale, seed):
    lo, hi = (None, None) if bounds is None else (min(bounds), max(bounds))
    proto = _model(zp=zp, lo=lo, hi=hi, weight_max=7, scale=scale)
    x = (np.random.default_rng(seed).standard_normal((3, 8)) * 300 * scale).astype(np.float32)
    x[0, :4] = (np.arange(4) + 0.5) * scale  # exact ties
    shifted, pass_ = _shift(proto)
    assert pass_.declined == []
    types = {n.output[0]: n for n in shifted.graph.node}
    zp_name = types["q"].input[2]
    assert next(t for t in shifted.graph.initializer if t.name == zp_name).data_type == TensorProto.UINT8
    onnx.checker.check_model(shifted, full_check=True)
    np.testing.assert_array_equal(_run(shifted, x), _run(proto, x))


def test_layers_with_full_range_8_bit_weights_keep_int8():
    proto = _model(zp=0, lo=None, hi=None, weight_max=SAFE_WEIGHT_CODE + 1)
    shifted, pass_ = _shift(proto)
    assert shifted.graph.initializer[1].data_type == TensorProto.INT8  # zp unchanged
    (line,) = pass_.declined
    assert "feeds MatMul with 8-bit weights (codes up to 65 from the zero point" in line
    _, pass_ = _shift(_model(zp=0, lo=None, hi=None, weight_max=SAFE_WEIGHT_CODE))
    assert pass_.declined == []


def test_integers_read_elsewhere_stay():
    proto = _model(zp=3, lo=-8, hi=7, weight_max=7, output_ints=True)
    shifted, pass_ = _shift(proto)
    assert [t.data_type for t in shifted.graph.initializer if t.name == "zp"] == [TensorProto.INT8]
    assert len(pass_.declined) == 1 and "graph output" in pass_.declined[0]


@pytest.mark.shared
def test_qop_of_the_corpus_gets_uint8_inputs_and_stays_exact(shared):
    """seed_qop_conv (4-bit weights...): QLinearConv reads uint8 and onnxruntime (optimisations off)
    equals the executor on the QONNX original."""
    from qonnx_tools.convert import convert
    from qonnx_tools.model_io import load
    from qonnx_tools.runtime import random_inputs
    from qonnx_tools.verify import reference_run, verify_against

    path = shared / "models" / "brevitas" / "seed_qop_conv" / "qonnx.onnx"
    if not path.is_file():
        pytest.skip("seed_qop_conv not in ../shared")
    model = load(path)
    reference = reference_run(model, random_inputs(model, seed=1))
    convert(model, to="qop")
    layers = [n for n in model.graph if n.op_type == "QLinearConv"]
    assert layers and all(n.inputs[0].dtype == ir.DataType.UINT8 for n in layers)
    assert verify_against(reference, model, backend="onnxruntime").ok
