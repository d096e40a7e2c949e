"""move-into-integer-domain: ops after a DequantizeLinear run on its integers; results equal onnxruntime's.

Every rewrite is exact, so the transformed model must give the same outputs as the
original, bit for bit, in onnxruntime with graph optimisations disabled (and in our
executor). Declines name the node and the reason, and leave the graph as it was.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from qonnx_tools._ir import ir
from qonnx_tools.executor import Executor
from qonnx_tools.passes import make_pass, registered_passes, run_passes
from qonnx_tools.passes.move_into_integer_domain import MoveIntoIntegerDomain
from qonnx_tools.testing import make_proto

F = TensorProto.FLOAT
NAME = "move-into-integer-domain"


def build(after, *, scale=0.1, zero=np.int8(2), axis=None, shape=(1, 3, 4, 4), opset=13, inits=(), outputs=None,
          inputs=()):
    """x -> QuantizeLinear 'quant' -> DequantizeLinear 'dq' (value 'a') -> ``after`` nodes."""
    attrs = {} if axis is None else {"axis": axis}
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "zp"], ["q"], name="quant", **attrs),
             helper.make_node("DequantizeLinear", ["q", "s", "zp"], ["a"], name="dq", **attrs), *after]
    base = [("s", np.asarray(scale, np.float32)), ("zp", np.asarray(zero))]
    return make_proto(nodes, [("x", F, list(shape)), *inputs], outputs or [("y", F, None)], inits=[*base, *inits],
                      opset=opset)


def moved(proto):
    model = ir.serde.deserialize_model(proto)
    pass_ = make_pass(NAME)
    result = pass_(model)
    return model, result.modified, pass_.declined


def ops(model) -> Counter:
    return Counter(n.op_type for n in model.graph)


def ort_run(proto, feeds):
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds)))


def feeds_for(proto, seed=0):
    shape = [d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
    return {"x": np.random.default_rng(seed).normal(0, 4.0, shape).astype(np.float32)}


def check_against_ort(proto, model, feeds=None):
    """The transformed model equals the original in onnxruntime, bit for bit; our executor agrees."""
    feeds = feeds or feeds_for(proto)
    want = ort_run(proto, feeds)
    got = ort_run(ir.to_proto(model), feeds)
    assert got.keys() == want.keys()
    for name in want:
        np.testing.assert_array_equal(got[name], want[name])
    ours = Executor(model).run(feeds)
    for name in want:
        np.testing.assert_array_equal(ours[name], want[name])


def producer_of_output(model, name="y"):
    return next(v for v in model.graph.outputs if v.name == name).producer()


# -- what moves ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "node,inits",
    [
        (helper.make_node("Reshape", ["a", "shape"], ["m"], name="op"), [("shape", np.array([1, -1], np.int64))]),
        (helper.make_node("Flatten", ["a"], ["m"], name="op", axis=2), []),
        (helper.make_node("Transpose", ["a"], ["m"], name="op", perm=[0, 2, 3, 1]), []),
        (helper.make_node("Squeeze", ["a", "axes"], ["m"], name="op"), [("axes", np.array([0], np.int64))]),
        (helper.make_node("Unsqueeze", ["a", "axes"], ["m"], name="op"), [("axes", np.array([1], np.int64))]),
        (helper.make_node("Identity", ["a"], ["m"], name="op"), []),
    ],
    ids=lambda p: getattr(p, "op_type", ""),
)
def test_data_movement_runs_on_the_integers(node, inits):
    proto = build([node, helper.make_node("Neg", ["m"], ["y"], name="neg")], inits=inits)
    model, modified, declined = moved(proto)
    assert modified and not declined
    op = next(n for n in model.graph if n.op_type == node.op_type)
    assert op.name == "op" and op.inputs[0].name == "q"  # same node name, reads the integers
    assert dict(op.attributes).keys() == {a.name for a in node.attribute}
    dq = op.outputs[0].uses()[0][0]
    assert dq.op_type == "DequantizeLinear" and dq.outputs[0].uses()[0][0].op_type == "Neg"
    assert ops(model)["DequantizeLinear"] == 1  # the old DequantizeLinear had no other reader: swept
    check_against_ort(proto, model)


def test_graph_output_keeps_its_name():
    proto = build([helper.make_node("Reshape", ["a", "shape"], ["y"], name="op")],
                  inits=[("shape", np.array([3, 16], np.int64))])
    model, modified, _ = moved(proto)
    assert modified
    assert [v.name for v in model.graph.outputs] == ["y"]
    assert producer_of_output(model).op_type == "DequantizeLinear"
    check_against_ort(proto, model)


def test_transpose_carries_a_per_axis_parameter_along():
    proto = build([helper.make_node("Transpose", ["a"], ["y"], name="op", perm=[0, 2, 3, 1])],
                  scale=[0.1, 0.2, 0.05], zero=np.array([0, 3, -4], np.int8), axis=1)
    model, modified, declined = moved(proto)
    assert modified and not declined
    dq = producer_of_output(model)
    assert dq.op_type == "DequantizeLinear" and dq.attributes["axis"].value == 3
    check_against_ort(proto, model)


@pytest.mark.parametrize("per_channel", [False, True])
@pytest.mark.parametrize("dtype", [np.int8, np.uint8])
def test_maxpool_runs_on_the_integers(per_channel, dtype):
    zero = np.array([5, 100, 7] if per_channel else 100, dtype) if dtype == np.uint8 else \
        np.array([-3, 0, 4] if per_channel else 2, dtype)
    proto = build([helper.make_node("MaxPool", ["a"], ["y"], name="pool", kernel_shape=[2, 2], strides=[2, 2])],
                  scale=[0.1, 0.2, 0.05] if per_channel else 0.1, zero=zero, axis=1 if per_channel else None)
    model, modified, declined = moved(proto)
    assert modified and not declined
    pool = next(n for n in model.graph if n.op_type == "MaxPool")
    assert pool.inputs[0].name == "q" and pool.outputs[0].dtype == ir.DataType.from_numpy(np.dtype(dtype))
    check_against_ort(proto, model)


def test_relu_goes_when_the_integers_cannot_be_below_the_zero_point():
    proto = build([helper.make_node("Relu", ["a"], ["y"], name="relu")], zero=np.uint8(0))
    model, modified, declined = moved(proto)
    assert modified and not declined
    assert ops(model) == Counter({"QuantizeLinear": 1, "DequantizeLinear": 1})
    check_against_ort(proto, model)


def test_relu_goes_after_an_integer_clip_at_or_above_the_zero_point():
    proto = build([helper.make_node("Relu", ["a"], ["y"], name="relu")],
                  inits=[("lo", np.int8(2)), ("hi", np.int8(7))])
    # put an integer Clip [2, 7] between quant and dq: q -> Clip -> dq
    nodes = list(proto.graph.node)
    nodes[1].input[0] = "qc"
    clip = helper.make_node("Clip", ["q", "lo", "hi"], ["qc"], name="clip")
    del proto.graph.node[:]
    proto.graph.node.extend([nodes[0], clip, *nodes[1:]])
    model, modified, _ = moved(proto)
    assert modified and "Relu" not in ops(model) and ops(model)["Clip"] == 1
    check_against_ort(proto, model)


@pytest.mark.parametrize("dtype,zp", [(np.int8, 0), (np.int8, -5), (np.uint8, 10)])
def test_relu_becomes_an_integer_clip(dtype, zp):
    proto = build([helper.make_node("Relu", ["a"], ["y"], name="relu")], zero=np.array(zp, dtype))
    model, modified, declined = moved(proto)
    assert modified and not declined
    assert "Relu" not in ops(model)
    clip = next(n for n in model.graph if n.op_type == "Clip")
    assert clip.inputs[0].name == "q" and int(clip.inputs[1].const_value.numpy()) == zp
    assert producer_of_output(model).op_type == "DequantizeLinear"
    check_against_ort(proto, model)


def test_exact_requantization_is_removed():
    proto = build([helper.make_node("QuantizeLinear", ["a", "s", "zp"], ["q2"], name="requant"),
                   helper.make_node("DequantizeLinear", ["q2", "s", "zp"], ["y"], name="dq2")])
    model, modified, declined = moved(proto)
    assert modified and not declined
    assert ops(model) == Counter({"QuantizeLinear": 1, "DequantizeLinear": 1})
    assert producer_of_output(model).inputs[0].name == "q"
    check_against_ort(proto, model)


def test_a_dequantized_value_with_other_readers_stays_for_them():
    proto = build([helper.make_node("MaxPool", ["a"], ["p"], name="pool", kernel_shape=[2, 2]),
                   helper.make_node("Neg", ["a"], ["n"], name="neg"),
                   helper.make_node("ReduceMax", ["p"], ["y"], name="max1", keepdims=0),
                   helper.make_node("ReduceMax", ["n"], ["y2"], name="max2", keepdims=0)],
                  outputs=[("y", F, None), ("y2", F, None)])
    model, modified, _ = moved(proto)
    assert modified and ops(model)["DequantizeLinear"] == 2
    check_against_ort(proto, model)


def test_a_chain_moves_in_one_run():
    """MaxPool -> Reshape -> Relu after one DequantizeLinear: all three run on the integers."""
    proto = build([helper.make_node("MaxPool", ["a"], ["p"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
                   helper.make_node("Reshape", ["p", "shape"], ["r"], name="flat"),
                   helper.make_node("Relu", ["r"], ["y"], name="relu")],
                  inits=[("shape", np.array([1, -1], np.int64))])
    model, modified, _ = moved(proto)
    assert modified
    assert [n.op_type for n in model.graph] == ["QuantizeLinear", "MaxPool", "Reshape", "Clip", "DequantizeLinear"]
    check_against_ort(proto, model)


# -- what declines -----------------------------------------------------------------------------------


def _maxpool(**kw):
    return helper.make_node("MaxPool", ["a"], ["y"], name="op", kernel_shape=[2, 2], **kw)


DECLINES = {
    "reshape after per-axis": (
        dict(after=[helper.make_node("Reshape", ["a", "shape"], ["y"], name="op")], scale=[0.1, 0.2, 0.3],
             zero=np.zeros(3, np.int8), axis=1, inits=[("shape", np.array([1, -1], np.int64))]),
        "node 'op' (Reshape): DequantizeLinear 'dq' is quantized along axis 1; per-axis parameters do not follow",
    ),
    "maxpool below opset 12": (
        dict(after=[_maxpool()], opset=11),
        "node 'op' (MaxPool): integer MaxPool needs ai.onnx opset >= 12 (the model has 11)",
    ),
    "maxpool along a spatial axis": (
        dict(after=[_maxpool()], scale=[0.1, 0.2, 0.3, 0.4], zero=np.zeros(4, np.int8), axis=2),
        "node 'op' (MaxPool): DequantizeLinear 'dq' is quantized along axis 2",
    ),
    "maxpool indices used": (
        dict(after=[helper.make_node("MaxPool", ["a"], ["y", "idx"], name="op", kernel_shape=[2, 2])],
             outputs=[("y", F, None), ("idx", TensorProto.INT64, None)]),
        "node 'op' (MaxPool): more than one of its outputs is used",
    ),
    "scale computed at run time": (
        dict(after=[_maxpool()], inputs=[("s2", F, [])]),
        "computed at run time",
    ),
    "relu with per-channel zero points": (
        dict(after=[helper.make_node("Relu", ["a"], ["y"], name="op")], scale=[0.1, 0.2, 0.3],
             zero=np.array([0, 1, 2], np.int8), axis=1),
        "node 'op' (Relu): DequantizeLinear 'dq' has per-channel zero points",
    ),
    "relu needing a clip below opset 12": (
        dict(after=[helper.make_node("Relu", ["a"], ["y"], name="op")], opset=11),
        "node 'op' (Relu): an integer Clip needs ai.onnx opset >= 12",
    ),
    "a real requantization": (
        dict(after=[helper.make_node("QuantizeLinear", ["a", "s2", "zp"], ["q2"], name="op"),
                    helper.make_node("DequantizeLinear", ["q2", "s2", "zp"], ["y"], name="dq2")],
             inits=[("s2", np.float32(0.3))]),
        "node 'op' (QuantizeLinear): requantizes: scale or zero point differs from DequantizeLinear 'dq'",
    ),
    "identity naming a graph output": (
        dict(after=[helper.make_node("Identity", ["a"], ["y"], name="op")]),
        "node 'op' (Identity): an Identity naming a graph output stays",
    ),
}


@pytest.mark.parametrize("case", list(DECLINES))
def test_declines_name_the_node_and_leave_the_graph_alone(case):
    kw, expected = DECLINES[case]
    kw = dict(kw)
    after = kw.pop("after")
    proto = build(after, **kw)
    if case == "scale computed at run time":  # the DequantizeLinear reads a graph input as its scale
        proto.graph.node[1].input[1] = "s2"
    before = ir.to_proto(ir.serde.deserialize_model(proto)).SerializeToString()
    model, modified, declined = moved(proto)
    assert not modified
    assert len(declined) == 1 and expected in declined[0], declined
    assert declined[0].startswith(("node 'op' ", "node 'dq' "))
    assert ir.to_proto(model).SerializeToString() == before  # nothing changed
    if case != "scale computed at run time":
        check_against_ort(proto, model)


def test_not_candidates_are_not_declines():
    """A Reshape of a float input or of a dequantized constant is not a candidate: no decline, no change."""
    proto = make_proto(
        [helper.make_node("DequantizeLinear", ["w", "s"], ["wf"], name="dqw"),
         helper.make_node("Reshape", ["wf", "shape"], ["wr"], name="rw"),
         helper.make_node("Reshape", ["x", "shape"], ["xr"], name="rx"),
         helper.make_node("Add", ["xr", "wr"], ["y"], name="add")],
        [("x", F, [2, 3])], [("y", F, None)],
        inits=[("w", np.arange(6, dtype=np.int8).reshape(2, 3)), ("s", np.float32(0.5)),
               ("shape", np.array([3, 2], np.int64))],
    )
    model, modified, declined = moved(proto)
    assert not modified and not declined


# -- registration ------------------------------------------------------------------------------------


def test_registered_by_name_and_runs_in_a_pipeline():
    assert registered_passes()[NAME] is MoveIntoIntegerDomain
    proto = build([_maxpool(strides=[2, 2])])
    model = ir.serde.deserialize_model(proto)
    result = run_passes(model, NAME)
    assert result.modified and next(n for n in model.graph if n.op_type == "MaxPool").inputs[0].name == "q"
    check_against_ort(proto, model)
