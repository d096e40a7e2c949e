"""Fuzzing: mutated models may only ever raise qonnx_tools' typed errors.

Valid seed models are mutated (bytes flipped, truncated; nodes, initializers, inputs,
outputs dropped; attributes, op types, names, shapes, dtypes, tensor data and opsets
changed) and each result goes through ``model_io.load``, ``check.check_file``, the
``cleanup`` pipeline and ``Executor(model).run(random_inputs(model))``. Anything that
escapes other than a ``QonnxToolsError`` subclass fails the test, with the mutation
list in the report.

The default run is short (``max_examples=100`` per test, a few seconds);
``QONNX_TOOLS_FUZZ_EXAMPLES=N`` runs longer campaigns, and also adds the TFC model
of ``models/`` to the seeds.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck, Phase, event, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from qonnx_tools import model_io
from qonnx_tools.check import check_file
from qonnx_tools.errors import QonnxToolsError
from qonnx_tools.executor import Executor
from qonnx_tools.passes import run_passes
from qonnx_tools.runtime import random_inputs

QONNX = "qonnx.custom_op.general"
_ENV = os.environ.get("QONNX_TOOLS_FUZZ_EXAMPLES")
EXAMPLES = int(_ENV) if _ENV else 100
#: bounds that keep a fuzz campaign's memory small (mutated shapes can declare anything)
MAX_TENSOR_BYTES = 64 * 2**20
MAX_MEMORY_BYTES = 256 * 2**20

FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=_ENV is None,  # the default run is reproducible; campaigns explore
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large],
    database=None,
    phases=settings.default.phases if _ENV is None else [Phase.explicit, Phase.generate],  # campaigns: many distinct escapes, no shrinking
)


# -- seeds ----------------------------------------------------------------------------------------


def _c(name: str, value, dtype=np.float32) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(value, dtype), name)


def _mlp_seed() -> onnx.ModelProto:
    """x (N, 4) -> Quant -> MatMul(Quant(W)) -> Add -> Relu -> Quant(unsigned) -> y."""
    rng = np.random.default_rng(1)
    nodes = [
        helper.make_node("Quant", ["x", "s_in", "zero", "b8"], ["xq"], name="q_in", domain=QONNX, signed=1, narrow=0,
                         rounding_mode="ROUND"),
        helper.make_node("Quant", ["W", "s_w", "zero", "b4"], ["Wq"], name="q_w", domain=QONNX, signed=1, narrow=1,
                         rounding_mode="ROUND"),
        helper.make_node("MatMul", ["xq", "Wq"], ["mm"], name="matmul"),
        helper.make_node("Add", ["mm", "bias"], ["biased"], name="add"),
        helper.make_node("Relu", ["biased"], ["act"], name="relu"),
        helper.make_node("Quant", ["act", "s_out", "zero", "b4"], ["y"], name="q_out", domain=QONNX, signed=0,
                         narrow=0, rounding_mode="FLOOR"),
    ]
    inits = [
        _c("s_in", 0.05), _c("zero", 0.0), _c("b8", 8.0), _c("b4", 4.0), _c("s_out", [0.1, 0.2, 0.1, 0.3]),
        _c("W", rng.standard_normal((4, 4))), _c("s_w", [[0.1, 0.1, 0.2, 0.2]]), _c("bias", rng.standard_normal(4)),
    ]
    graph = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])], inits,
                              value_info=[helper.make_tensor_value_info("mm", TensorProto.FLOAT, ["N", 4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid(QONNX, 1)])
    model.ir_version = 8
    return model


def _conv_seed() -> onnx.ModelProto:
    """x (1, 2, 5, 5) -> Conv -> MultiThreshold -> MaxPool -> Reshape -> BipolarQuant -> Trunc -> FloatQuant -> y."""
    rng = np.random.default_rng(2)
    nodes = [
        helper.make_node("Conv", ["x", "Wc"], ["conv"], name="conv", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("MultiThreshold", ["conv", "thr"], ["mt"], name="mt", domain=QONNX, out_dtype="UINT2",
                         data_layout="NCHW"),
        helper.make_node("MaxPool", ["mt"], ["pool"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Reshape", ["pool", "shape"], ["flat"], name="reshape"),
        helper.make_node("BipolarQuant", ["flat", "one"], ["bip"], name="bip", domain=QONNX),
        helper.make_node("Trunc", ["bip", "one", "zero", "b8", "b4"], ["tr"], name="trunc", domain=QONNX,
                         rounding_mode="FLOOR"),
        helper.make_node("FloatQuant", ["tr", "one", "e4", "m3", "bias7", "max448"], ["y"], name="fq", domain=QONNX),
    ]
    inits = [
        _c("Wc", rng.standard_normal((3, 2, 3, 3))), _c("thr", np.sort(rng.standard_normal((3, 3)), axis=1)),
        _c("shape", [1, -1], np.int64), _c("one", 1.0), _c("zero", 0.0), _c("b8", 8.0), _c("b4", 4.0),
        _c("e4", 4.0), _c("m3", 3.0), _c("bias7", 7.0), _c("max448", 448.0),
    ]
    graph = helper.make_graph(nodes, "conv", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 5, 5])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 12])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid(QONNX, 1)])
    model.ir_version = 8
    return model


def _seeds() -> list[onnx.ModelProto]:
    """The two synthetic seeds; campaigns add TFC and the files of $QONNX_TOOLS_FUZZ_SEEDS
    (a glob, e.g. '../shared/models/brevitas/*/qonnx.onnx'; models without external data)."""
    seeds = [_mlp_seed(), _conv_seed()]
    if _ENV:
        tfc = Path(__file__).resolve().parents[1] / "models" / "tfc" / "TFC_2W2A.onnx"
        paths = [tfc] if tfc.is_file() else []
        pattern = os.environ.get("QONNX_TOOLS_FUZZ_SEEDS")
        if pattern:
            import glob

            paths += [Path(p) for p in sorted(glob.glob(pattern))]
        for path in paths:
            proto = onnx.load(str(path), load_external_data=False)
            if not any(t.data_location == TensorProto.EXTERNAL for t in proto.graph.initializer):
                seeds.append(proto)
    return seeds


SEEDS = _seeds()


# -- running one mutant ------------------------------------------------------------------------------


def _exercise(path: Path, steps: list[str]) -> None:
    """load, check, cleanup and execute ``path``; only QonnxToolsError may escape any of them."""
    def guarded(stage: str, function):
        try:
            result = function()
        except QonnxToolsError as exc:
            event(f"{stage}: {type(exc).__name__}")
            return None
        except Exception as exc:  # the point of the test: re-raised as is, so distinct escapes stay distinct
            exc.add_note(f"escaped from {stage} of {path.name}; mutations: {steps}")
            raise
        event(f"{stage}: ok")
        return result

    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        findings = guarded("check", lambda: check_file(path, max_tensor_bytes=MAX_TENSOR_BYTES))
        model = guarded("load", lambda: model_io.load(path, max_tensor_bytes=MAX_TENSOR_BYTES))
        if model is None:
            # what load refuses, check reports (or check could not read the file either)
            assert findings is None or any(f.severity == "error" for f in findings), (
                f"load refused a file check found no error in; mutations: {steps}"
            )
            return
        for stage, function in (
            ("exec", lambda: Executor(model, max_memory_bytes=MAX_MEMORY_BYTES).run(random_inputs(model))),
            ("cleanup", lambda: run_passes(model, "cleanup")),
            ("exec after cleanup", lambda: Executor(model, max_memory_bytes=MAX_MEMORY_BYTES).run(random_inputs(model))),
        ):
            if guarded(stage, function) is None and stage == "cleanup":
                return  # a model cleanup refused is not executed again


# -- mutations -----------------------------------------------------------------------------------------

_OP_TYPES = ["Relu", "Add", "MatMul", "Conv", "Reshape", "Transpose", "Identity", "Mul", "Gemm", "Flatten",
             "Concat", "Quant", "IntQuant", "BipolarQuant", "Trunc", "FloatQuant", "MultiThreshold", "MaxPool",
             "Sigmoid", "Cast", "Softmax", "BatchNormalization", "NoSuchOp", ""]
_DOMAINS = ["", QONNX, "finn.custom_op.general", "onnx.brevitas", "qonnx.custom_op.channels_last", "com.x"]
_DTYPES = [TensorProto.FLOAT, TensorProto.INT64, TensorProto.INT8, TensorProto.UINT8, TensorProto.DOUBLE,
           TensorProto.FLOAT16, TensorProto.BOOL, TensorProto.STRING, TensorProto.INT4, TensorProto.FLOAT8E4M3FN,
           TensorProto.COMPLEX64, 0, 999]
_DIMS = [-3, -1, 0, 1, 2, 3, 4, 5, 12, 16, 2**31, 2**40]
_NUMBERS = [0.0, -0.0, 1.0, -1.0, 0.5, 2.5, 4.0, 8.0, 64.0, 65.0, -8.0, 1e30, -1e30, float("inf"), float("-inf"),
            float("nan"), 1e-45]
_STRINGS = ["ROUND", "FLOOR", "ceil", "HALF_EVEN", "sideways", "NCHW", "NHWC", "NC", "C", "", "INT4", "UINT2",
            "BIPOLAR", "FLOAT<4,3,7>", "INT999", "\u00e9\x00"]


def _names(model: onnx.ModelProto) -> list[str]:
    names = {i.name for i in model.graph.input} | {t.name for t in model.graph.initializer}
    names |= {o for n in model.graph.node for o in n.output}
    return sorted(names) + ["", "nowhere"]


def _attribute(data, name: str) -> onnx.AttributeProto:
    kind = data.draw(st.sampled_from(["int", "float", "string", "ints", "floats", "tensor", "untyped"]))
    if kind == "int":
        return helper.make_attribute(name, data.draw(st.sampled_from([-1, 0, 1, 2, 3, 7, 2**40])))
    if kind == "float":
        return helper.make_attribute(name, data.draw(st.sampled_from(_NUMBERS)))
    if kind == "string":
        return helper.make_attribute(name, data.draw(st.sampled_from(_STRINGS)))
    if kind == "ints":
        return helper.make_attribute(name, data.draw(st.lists(st.sampled_from(_DIMS[:9]), max_size=5)),
                                     attr_type=onnx.AttributeProto.INTS)
    if kind == "floats":
        return helper.make_attribute(name, data.draw(st.lists(st.sampled_from(_NUMBERS), min_size=1, max_size=4)))
    if kind == "tensor":
        return helper.make_attribute(name, _c("t", data.draw(st.lists(st.sampled_from(_NUMBERS), max_size=4))))
    attr = onnx.AttributeProto(name=name)
    attr.i = 1
    return attr


def _mutate(data, model: onnx.ModelProto, steps: list[str]) -> None:
    g = model.graph
    kind = data.draw(st.sampled_from([
        "drop_node", "drop_initializer", "drop_input", "drop_output", "set_attribute", "drop_attribute",
        "rewire_input", "rename_output", "op_type", "domain", "tensor_values", "tensor_dims", "tensor_dtype",
        "tensor_raw", "shape", "elem_type", "opset", "ir_version", "swap_nodes", "duplicate_node",
        "tensor_resize", "tensor_retype", "tensor_ints",
    ]))
    index = lambda seq: data.draw(st.integers(0, len(seq) - 1))  # noqa: E731
    if kind == "drop_node" and g.node:
        i = index(g.node)
        steps.append(f"drop node {g.node[i].name}")
        del g.node[i]
    elif kind == "drop_initializer" and g.initializer:
        i = index(g.initializer)
        steps.append(f"drop initializer {g.initializer[i].name}")
        del g.initializer[i]
    elif kind == "drop_input" and g.input:
        steps.append("drop graph input")
        del g.input[index(g.input)]
    elif kind == "drop_output" and g.output:
        steps.append("drop graph output")
        del g.output[index(g.output)]
    elif kind in ("set_attribute", "drop_attribute") and g.node:
        node = g.node[index(g.node)]
        if kind == "drop_attribute" and node.attribute:
            i = index(node.attribute)
            steps.append(f"drop attribute {node.name}.{node.attribute[i].name}")
            del node.attribute[i]
        else:
            names = [a.name for a in node.attribute] + ["signed", "narrow", "rounding_mode", "kernel_shape", "pads",
                                                         "axis", "perm", "data_layout", "out_dtype", "bogus"]
            name = data.draw(st.sampled_from(names))
            attr = _attribute(data, name)
            kept = [a for a in node.attribute if a.name != name]
            del node.attribute[:]
            node.attribute.extend(kept + [attr])
            steps.append(f"set attribute {node.name}.{name} = {onnx.helper.printable_attribute(attr)[:60]}")
    elif kind == "rewire_input" and g.node:
        node = g.node[index(g.node)]
        new = data.draw(st.sampled_from(_names(model)))
        if node.input and data.draw(st.booleans()):
            i = index(node.input)
            steps.append(f"input {node.name}[{i}] = {new!r}")
            node.input[i] = new
        else:
            steps.append(f"append input {new!r} to {node.name}")
            node.input.append(new)
    elif kind == "rename_output" and g.node:
        node = g.node[index(g.node)]
        if node.output:
            new = data.draw(st.sampled_from(_names(model)))
            steps.append(f"output {node.name}[0] = {new!r}")
            node.output[0] = new
    elif kind == "op_type" and g.node:
        node = g.node[index(g.node)]
        node.op_type = data.draw(st.sampled_from(_OP_TYPES))
        steps.append(f"op_type {node.name} = {node.op_type}")
    elif kind == "domain" and g.node:
        node = g.node[index(g.node)]
        node.domain = data.draw(st.sampled_from(_DOMAINS))
        steps.append(f"domain {node.name} = {node.domain!r}")
    elif kind.startswith("tensor") and g.initializer:
        t = g.initializer[index(g.initializer)]
        if kind == "tensor_values" and t.data_type == TensorProto.FLOAT:
            values = np.asarray(data.draw(st.lists(st.sampled_from(_NUMBERS), min_size=1, max_size=8)), np.float32)
            dims = tuple(t.dims)
            if all(0 <= d <= 4096 for d in dims) and data.draw(st.booleans()):  # keep the shape, new values
                values = np.resize(values, dims)
            t.CopyFrom(_c(t.name, values))
            steps.append(f"values of {t.name} = {values.ravel()[:8].tolist()} shape {values.shape}")
        elif kind == "tensor_dims":
            dims = data.draw(st.lists(st.sampled_from(_DIMS), max_size=4))
            del t.dims[:]
            t.dims.extend(dims)
            steps.append(f"dims of {t.name} = {dims}")
        elif kind == "tensor_dtype":
            t.data_type = data.draw(st.sampled_from(_DTYPES))
            steps.append(f"data_type of {t.name} = {t.data_type}")
        elif kind == "tensor_resize":  # consistent data of a new shape: gets past load
            dims = data.draw(st.lists(st.sampled_from([0, 1, 2, 3, 4, 5, 12]), max_size=4))
            values = data.draw(st.lists(st.sampled_from(_NUMBERS), min_size=1, max_size=8))
            t.CopyFrom(_c(t.name, np.resize(np.asarray(values, np.float32), dims)))
            steps.append(f"resize {t.name} to {dims}")
        elif kind == "tensor_retype":
            try:
                arr = numpy_helper.to_array(t)
            except Exception:
                return
            target = data.draw(st.sampled_from([np.float32, np.float64, np.float16, np.int64, np.int32, np.int8,
                                                np.uint8, np.bool_]))
            with np.errstate(all="ignore"):
                converted = np.nan_to_num(arr.astype(np.float64)).astype(target) if arr.dtype.kind in "fiub" else arr
            t.CopyFrom(numpy_helper.from_array(np.asarray(converted), t.name))
            steps.append(f"retype {t.name} to {np.dtype(target).name}")
        elif kind == "tensor_ints":
            values = data.draw(st.lists(st.sampled_from([-2**40, -3, -1, 0, 1, 2, 3, 4, 12, 2**31]), min_size=0,
                                        max_size=5))
            t.CopyFrom(_c(t.name, values, np.int64))
            steps.append(f"int values of {t.name} = {values}")
        elif kind == "tensor_raw" and t.raw_data:
            cut = data.draw(st.integers(0, len(t.raw_data)))
            t.raw_data = t.raw_data[:cut] + data.draw(st.binary(max_size=8))
            steps.append(f"raw_data of {t.name} cut at {cut}")
    elif kind in ("shape", "elem_type"):
        infos = list(g.input) + list(g.output) + list(g.value_info)
        if infos:
            info = infos[data.draw(st.integers(0, len(infos) - 1))]
            if kind == "elem_type":
                info.type.tensor_type.elem_type = data.draw(st.sampled_from(_DTYPES))
                steps.append(f"elem_type of {info.name} = {info.type.tensor_type.elem_type}")
            else:
                dims = data.draw(st.lists(st.one_of(st.sampled_from(_DIMS), st.sampled_from(["N", "M"])), max_size=5))
                info.type.tensor_type.ClearField("shape")
                for d in dims:
                    dim = info.type.tensor_type.shape.dim.add()
                    if isinstance(d, str):
                        dim.dim_param = d
                    else:
                        dim.dim_value = d
                steps.append(f"shape of {info.name} = {dims}")
    elif kind == "opset":
        entry = model.opset_import[data.draw(st.integers(0, len(model.opset_import) - 1))]
        entry.version = data.draw(st.sampled_from([0, 1, 2, 3, 7, 11, 13, 18, 21, 99]))
        steps.append(f"opset {entry.domain!r} = {entry.version}")
    elif kind == "ir_version":
        model.ir_version = data.draw(st.sampled_from([0, 1, 3, 7, 10, 11, 99]))
        steps.append(f"ir_version = {model.ir_version}")
    elif kind == "swap_nodes" and len(g.node) > 1:
        i, j = index(g.node), index(g.node)
        a, b = onnx.NodeProto(), onnx.NodeProto()
        a.CopyFrom(g.node[i])
        b.CopyFrom(g.node[j])
        g.node[i].CopyFrom(b)
        g.node[j].CopyFrom(a)
        steps.append(f"swap nodes {i} and {j}")
    elif kind == "duplicate_node" and g.node:
        node = g.node[index(g.node)]
        g.node.append(node)
        steps.append(f"duplicate node {node.name}")


# -- the tests ---------------------------------------------------------------------------------------


@FUZZ
@given(data=st.data())
def test_structural_mutations_raise_only_typed_errors(tmp_path_factory, data):
    seed = data.draw(st.sampled_from(range(len(SEEDS))))
    model = onnx.ModelProto()
    model.CopyFrom(SEEDS[seed])
    steps = [f"seed {seed}"]
    for _ in range(data.draw(st.integers(1, 4))):
        _mutate(data, model, steps)
    path = tmp_path_factory.mktemp("fuzz") / "mutant.onnx"
    path.write_bytes(model.SerializeToString())
    _exercise(path, steps)


@FUZZ
@given(data=st.data())
def test_byte_mutations_raise_only_typed_errors(tmp_path_factory, data):
    seed = data.draw(st.sampled_from(range(len(SEEDS))))
    raw = bytearray(SEEDS[seed].SerializeToString())
    steps = [f"seed {seed}"]
    for _ in range(data.draw(st.integers(1, 4))):
        kind = data.draw(st.sampled_from(["flip", "truncate", "insert", "zero"]))
        at = data.draw(st.integers(0, max(len(raw) - 1, 0)))
        if kind == "flip" and raw:
            bit = data.draw(st.integers(0, 7))
            raw[at] ^= 1 << bit
        elif kind == "truncate":
            del raw[at:]
        elif kind == "insert":
            raw[at:at] = data.draw(st.binary(min_size=1, max_size=8))
        elif kind == "zero" and raw:
            raw[at] = 0
        steps.append(f"{kind} at {at}")
    path = tmp_path_factory.mktemp("fuzz") / "mutant.onnx"
    path.write_bytes(bytes(raw))
    _exercise(path, steps)


@pytest.mark.parametrize("seed", range(len(SEEDS)))
def test_seeds_are_valid(tmp_path, seed):
    """The seeds themselves load, check clean, clean up and run (so mutants start from valid models)."""
    path = tmp_path / "seed.onnx"
    path.write_bytes(SEEDS[seed].SerializeToString())
    assert [f for f in check_file(path) if f.severity == "error"] == []
    model = model_io.load(path)
    feeds = random_inputs(model)
    expected = Executor(model).run(feeds)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run_passes(model, "cleanup")
    got = Executor(model).run(feeds)
    for name, value in expected.items():
        np.testing.assert_allclose(got[name], value, rtol=1e-6, atol=1e-6)
