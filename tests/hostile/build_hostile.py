"""Build hostile and broken model files into a directory (used by test_hostile.py).

    python tests/hostile/build_hostile.py OUTDIR

Every case gets its own folder ``OUTDIR/<case>/`` holding ``<case>.onnx`` and any
companion files (external data, symlinks). Nothing here is committed as a binary: the
files are generated from the recipes below. Each case records what the CLI must do:
the exit code of ``qonnx info``, ``check``, ``cleanup -o`` and ``exec -o`` (2 = refused
as bad input, 1 = check findings, 0 = accepted) and a phrase the error (stderr for
exit 2, the findings on stdout for check's exit 1) must contain. Cases of models that
load but break QONNX's parameter rules (``illegal``) also record the transforming
commands ``convert``, ``streamline``, ``prepare`` and ``transform``: each refuses them (2).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

QONNX = "qonnx.custom_op.general"

#: exit codes: refused (2) by every command unless a case says otherwise
REFUSED = {"info": 2, "check": 2, "cleanup": 2, "exec": 2}
#: the protobuf parses: ``check`` lists the problems (1), the others refuse to load (2)
FOUND = {"info": 2, "check": 1, "cleanup": 2, "exec": 2}


@dataclass
class Case:
    name: str
    build: Callable[[Path], None]  # writes <dir>/<name>.onnx (and companions) into the folder
    phrase: str  # expected in stderr (exit 2) or in check's findings (exit 1)
    codes: dict[str, int] = field(default_factory=lambda: dict(FOUND))
    doc: str = ""

    def model_path(self, root: Path) -> Path:
        return root / self.name / f"{self.name}.onnx"


# -- a valid base model ---------------------------------------------------------------------------


def base_model(*, opset: int = 13, x_shape=(1, 4)) -> onnx.ModelProto:
    """x (1, 4) -> Quant(x, scale, zeropt, bitwidth) -> MatMul(W) -> Relu -> y (1, 4)."""
    nodes = [
        helper.make_node("Quant", ["x", "scale", "zeropt", "bitwidth"], ["xq"], name="quant", domain=QONNX,
                         signed=1, narrow=0, rounding_mode="ROUND"),
        helper.make_node("MatMul", ["xq", "W"], ["mm"], name="matmul"),
        helper.make_node("Relu", ["mm"], ["y"], name="relu"),
    ]
    inits = [
        numpy_helper.from_array(np.array(0.125, np.float32), "scale"),
        numpy_helper.from_array(np.array(0.0, np.float32), "zeropt"),
        numpy_helper.from_array(np.array(4.0, np.float32), "bitwidth"),
        numpy_helper.from_array(np.arange(16, dtype=np.float32).reshape(4, 4) / 16, "W"),
    ]
    graph = helper.make_graph(
        nodes, "hostile_base",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x_shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [x_shape[0], 4])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset), helper.make_opsetid(QONNX, 1)])
    model.ir_version = 8
    return model


def _save(model: onnx.ModelProto, folder: Path, name: str) -> None:
    (folder / f"{name}.onnx").write_bytes(model.SerializeToString())


def _node(model: onnx.ModelProto, name: str) -> onnx.NodeProto:
    return next(n for n in model.graph.node if n.name == name)


def _init(model: onnx.ModelProto, name: str) -> onnx.TensorProto:
    return next(t for t in model.graph.initializer if t.name == name)


def _model_case(name: str, phrase: str, edit: Callable[[onnx.ModelProto], None], codes=None, doc="") -> Case:
    def build(folder: Path) -> None:
        model = base_model()
        edit(model)
        _save(model, folder, name)

    return Case(name, build, phrase, dict(codes or FOUND), doc)


def _bytes_case(name: str, phrase: str, data: Callable[[], bytes], doc="") -> Case:
    def build(folder: Path) -> None:
        (folder / f"{name}.onnx").write_bytes(data())

    return Case(name, build, phrase, dict(REFUSED), doc)


# -- external data ----------------------------------------------------------------------------------

_W_BYTES = (np.arange(16, dtype=np.float32).reshape(4, 4) / 16).tobytes()


def _external(model: onnx.ModelProto, location: str, **entries: str) -> None:
    """Make initializer W external with the given location (and offset/length entries)."""
    w = _init(model, "W")
    w.ClearField("raw_data")
    w.ClearField("float_data")
    w.data_location = TensorProto.EXTERNAL
    del w.external_data[:]
    if location is not None:
        w.external_data.add(key="location", value=location)
    for key, value in entries.items():
        w.external_data.add(key=key, value=value)


def _external_case(name: str, phrase: str, location: str | None, prepare: Callable[[Path], None] | None = None,
                   doc: str = "", **entries: str) -> Case:
    def build(folder: Path) -> None:
        if prepare is not None:
            prepare(folder)
        model = base_model()
        _external(model, location, **entries)
        _save(model, folder, name)

    return Case(name, build, phrase, dict(FOUND), doc)


def _write_data(file: str, data: bytes = _W_BYTES) -> Callable[[Path], None]:
    return lambda folder: (folder / file).write_bytes(data)


def _outside_symlink(folder: Path) -> None:
    secret = folder.parent / "outside_secret.bin"
    secret.write_bytes(_W_BYTES)
    os.symlink(secret, folder / "link.bin")


# -- recipes ------------------------------------------------------------------------------------------


def _truncated() -> bytes:
    data = base_model().SerializeToString()
    return data[: len(data) // 2]


def _no_ir_version() -> bytes:
    model = base_model()
    model.ClearField("ir_version")
    return model.SerializeToString()


def _foreign_protobuf() -> bytes:
    return numpy_helper.from_array(np.arange(64, dtype=np.float32), "not_a_model").SerializeToString()


def _no_graph() -> bytes:
    model = onnx.ModelProto(ir_version=8)
    model.opset_import.add(domain="", version=13)
    return model.SerializeToString()


def _ir_version(version: int) -> Callable[[], bytes]:
    def data() -> bytes:
        model = base_model()
        model.ir_version = version
        return model.SerializeToString()

    return data


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field (wire type 2)."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _nested_ifs(depth: int) -> bytes:
    """If nodes nested ``depth`` deep in then_branch (a recursion bomb for naive readers).

    Written at the wire level: the protobuf library itself refuses to build messages
    nested deeper than its parse limit.
    """
    out = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1]).SerializeToString()
    leaf = helper.make_graph([helper.make_node("Constant", [], ["y"], value_float=1.0)], "leaf", [],
                             [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])]).SerializeToString()
    graph = leaf
    for _ in range(depth):
        attribute = _field(1, b"then_branch") + _varint(20 << 3) + _varint(5) + _field(6, graph)  # type GRAPH
        node = _field(1, b"cond") + _field(2, b"y") + _field(4, b"If") + _field(5, attribute)
        graph = _field(1, node) + _field(2, b"level") + _field(12, out)  # node, name, output
    header = helper.make_model(helper.make_graph([], "x", [], []), opset_imports=[helper.make_opsetid("", 13)])
    header.ClearField("graph")
    return header.SerializeToString() + _field(7, graph)


def _directory(folder: Path) -> None:
    (folder / "directory.onnx").mkdir()


def _oversized(folder: Path) -> None:
    with open(folder / "oversized.onnx", "wb") as handle:  # sparse: no disk space is used
        handle.truncate(2**31 + 4096)


def _cycle(m):
    _node(m, "matmul").input[0] = "y"  # matmul reads relu's output: matmul -> relu -> matmul


def _self_loop(m):
    _node(m, "relu").input[0] = "y"


def _missing_producer(m):
    _node(m, "matmul").input[1] = "W_nobody_makes"


def _duplicate_producer(m):
    m.graph.node.append(helper.make_node("Relu", ["mm"], ["y"], name="second_relu"))


def _output_is_input(m):
    m.graph.node.append(helper.make_node("Relu", ["xq"], ["x"], name="writes_x"))


def _output_is_initializer(m):
    m.graph.node.append(helper.make_node("Relu", ["xq"], ["W"], name="writes_w"))


def _duplicate_input(m):
    m.graph.input.append(helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4]))


def _duplicate_initializer(m):
    m.graph.initializer.append(numpy_helper.from_array(np.ones((4, 4), np.float32), "W"))


def _unnamed_initializer(m):
    m.graph.initializer.append(numpy_helper.from_array(np.ones(3, np.float32), ""))


def _phantom_output(m):
    m.graph.output.append(helper.make_tensor_value_info("ghost", TensorProto.FLOAT, [1]))


def _no_outputs(m):
    del m.graph.output[:]


def _gemm_string_attribute(m):
    node = _node(m, "matmul")
    node.op_type = "Gemm"
    node.attribute.append(helper.make_attribute("transA", "yes"))


def _quant_string_signed(m):
    node = _node(m, "quant")
    del node.attribute[:]
    node.attribute.append(helper.make_attribute("signed", "yes"))


def _untyped_attribute(m):
    attr = _node(m, "relu").attribute.add()
    attr.name = "alpha"
    attr.f = 0.5  # type left UNDEFINED


def _huge_initializer(m):
    w = _init(m, "W")
    del w.dims[:]
    w.dims.extend([1 << 20, 1 << 20, 4])  # 16 TiB declared; the data is 64 bytes


def _huge_input(m):
    m.graph.input[0].CopyFrom(helper.make_tensor_value_info("x", TensorProto.FLOAT, [1 << 20, 1 << 20, 1024]))


def _huge_constant(m):
    t = onnx.TensorProto(name="c", data_type=TensorProto.FLOAT, dims=[1 << 40])
    node = helper.make_node("Constant", [], ["c_out"], value=t, name="huge_constant")
    m.graph.node.insert(0, node)


def _short_raw(m):
    w = _init(m, "W")
    w.raw_data = w.raw_data[:20]


def _short_float_data(m):
    w = _init(m, "W")
    values = numpy_helper.to_array(w).ravel()[:7]
    w.ClearField("raw_data")
    w.float_data.extend(values.tolist())


def _no_data(m):
    _init(m, "W").ClearField("raw_data")


def _unknown_dtype(m):
    _init(m, "W").data_type = 999


def _negative_init_dim(m):
    w = _init(m, "W")
    del w.dims[:]
    w.dims.extend([-4, -4])


def _negative_input_dim(m):
    m.graph.input[0].type.tensor_type.shape.dim[0].dim_value = -1


def _unknown_elem_type(m):
    m.graph.input[0].type.tensor_type.elem_type = 777


def _subgraph_missing_input(m):
    then_out = helper.make_tensor_value_info("branch_out", TensorProto.FLOAT, [1, 4])
    then_graph = helper.make_graph([helper.make_node("Relu", ["nowhere"], ["branch_out"], name="inner_relu")],
                                   "then", [], [then_out])
    else_graph = helper.make_graph([helper.make_node("Identity", ["mm"], ["branch_out"], name="inner_id")],
                                   "else", [], [then_out])
    m.graph.initializer.append(numpy_helper.from_array(np.array(True), "flag"))
    node = helper.make_node("If", ["flag"], ["branched"], then_branch=then_graph, else_branch=else_graph, name="if")
    m.graph.node.insert(2, node)
    _node(m, "relu").input[0] = "branched"


def _external_in_constant(m):
    t = onnx.TensorProto(name="c", data_type=TensorProto.FLOAT, dims=[4])
    t.data_location = TensorProto.EXTERNAL
    t.external_data.add(key="location", value="../../etc/passwd")
    m.graph.node.insert(0, helper.make_node("Constant", [], ["c_out"], value=t, name="evil_constant"))


# semantic problems: the file loads; check finds them (exit 1), execution refuses some (exit 2)

def _quant_input(index: int, value) -> Callable[[onnx.ModelProto], None]:
    names = ["x", "scale", "zeropt", "bitwidth"]

    def edit(m):
        t = _init(m, names[index])
        t.CopyFrom(numpy_helper.from_array(np.asarray(value, np.float32), names[index]))

    return edit


def _rounding_mode(m):
    node = _node(m, "quant")
    for attr in node.attribute:
        if attr.name == "rounding_mode":
            attr.s = b"SIDEWAYS"


def _add_float_int(m):
    m.graph.initializer.append(numpy_helper.from_array(np.ones((1, 4), np.int64), "ints"))
    _node(m, "relu").input[0] = "sum"
    m.graph.node.insert(2, helper.make_node("Add", ["mm", "ints"], ["sum"], name="mixed_add"))


def _quant_declared_int(m):
    m.graph.value_info.append(helper.make_tensor_value_info("xq", TensorProto.INT8, [1, 4]))


def _unknown_op(m):
    _node(m, "relu").domain = "com.example.secret"
    m.opset_import.append(helper.make_opsetid("com.example.secret", 1))


def _float_quant_negative_mantissa(m):
    node = _node(m, "quant")
    node.op_type = "FloatQuant"
    del node.attribute[:]
    del node.input[:]
    node.input.extend(["x", "scale", "e_bits", "m_bits", "bias"])
    m.graph.initializer.extend([
        numpy_helper.from_array(np.array(4.0, np.float32), "e_bits"),
        numpy_helper.from_array(np.array(-3.0, np.float32), "m_bits"),
        numpy_helper.from_array(np.array(7.0, np.float32), "bias"),
    ])


def _trunc_widens(m):
    node = _node(m, "quant")
    node.op_type = "Trunc"
    del node.attribute[:]
    del node.input[:]
    node.input.extend(["x", "scale", "zeropt", "in_bits", "out_bits"])
    m.graph.initializer.extend([
        numpy_helper.from_array(np.array(4.0, np.float32), "in_bits"),
        numpy_helper.from_array(np.array(8.0, np.float32), "out_bits"),
    ])


def _quant_two_inputs(m):
    del _node(m, "quant").input[2:]


def _unknown_qonnx_op(m):
    _node(m, "quant").op_type = "Quantize"


def _duplicate_node_names(m):
    _node(m, "relu").name = "matmul"


LOADS = {"info": 0, "check": 1, "cleanup": 0, "exec": 0}


def _codes(**overrides: int) -> dict[str, int]:
    return {**LOADS, **overrides}


#: Commands that transform a model; they refuse one that breaks QONNX's rules (exit 2, no output).
TRANSFORMS = ("cleanup", "convert", "streamline", "prepare", "transform")


def _illegal(**overrides: int) -> dict[str, int]:
    """A model that loads, with an illegal QONNX parameter: check finds it, every transform refuses it."""
    return {**LOADS, **{command: 2 for command in TRANSFORMS}, **overrides}


CASES: list[Case] = [
    # unreadable files: every command refuses (2)
    _bytes_case("empty", "empty file", lambda: b""),
    _bytes_case("garbage", "not a readable ONNX model", lambda: bytes(range(256)) * 8),
    _bytes_case("truncated", "not a readable ONNX model", _truncated),
    _bytes_case("text_file", "not a readable ONNX model", lambda: b"this is not a model\n" * 20),
    _bytes_case("no_ir_version", "no ir_version", _no_ir_version),
    _bytes_case("future_ir_version", "IR version 99", _ir_version(99)),
    _bytes_case("foreign_protobuf", "not", _foreign_protobuf, "a TensorProto, not a ModelProto"),
    _bytes_case("no_graph", "no graph", _no_graph),
    _bytes_case("nested_ifs", "not a readable ONNX model", lambda: _nested_ifs(400), "If nested 400 deep"),
    Case("directory", _directory, "not a regular file", dict(REFUSED), "a directory named .onnx"),
    Case("oversized", _oversized, "2 GiB", dict(REFUSED), "a sparse 2 GiB file"),
    # parseable but broken: check lists the problems (1), loading refuses (2)
    _model_case("no_outputs", "has no outputs", _no_outputs),
    _model_case("cycle", "cycle", _cycle),
    _model_case("self_loop", "cycle", _self_loop),
    _model_case("missing_producer", "produced by no node", _missing_producer),
    _model_case("duplicate_producer", "already produced", _duplicate_producer),
    _model_case("output_is_graph_input", "also a graph input", _output_is_input),
    _model_case("output_is_initializer", "also an initializer", _output_is_initializer),
    _model_case("duplicate_graph_input", "declared twice", _duplicate_input),
    _model_case("duplicate_initializer", "defined twice", _duplicate_initializer),
    _model_case("unnamed_initializer", "has no name", _unnamed_initializer),
    _model_case("phantom_output", "produced by no node", _phantom_output),
    _model_case("subgraph_missing_input", "produced by no node", _subgraph_missing_input),
    _model_case("attribute_wrong_type", "must be INT", _gemm_string_attribute),
    _model_case("qonnx_attribute_wrong_type", "must be INT", _quant_string_signed),
    _model_case("attribute_without_type", "no valid type", _untyped_attribute),
    _model_case("huge_initializer", "max_tensor_bytes", _huge_initializer),
    _model_case("huge_input_shape", "max_tensor_bytes", _huge_input),
    _model_case("huge_constant", "max_tensor_bytes", _huge_constant),
    _model_case("short_raw_data", "bytes of data", _short_raw),
    _model_case("short_float_data", "holds 7 values", _short_float_data),
    _model_case("no_tensor_data", "holds no data", _no_data),
    _model_case("unknown_data_type", "unknown data type", _unknown_dtype),
    _model_case("negative_initializer_dims", "negative dimension", _negative_init_dim),
    _model_case("negative_input_dim", "negative dimension", _negative_input_dim),
    _model_case("unknown_element_type", "unknown element type", _unknown_elem_type),
    _model_case("external_in_constant", "path traversal", _external_in_constant),
    # external data: refused before any file is read
    _external_case("external_absolute", "absolute path", "/etc/passwd"),
    _external_case("external_dotdot", "path traversal", "../outside.bin"),
    _external_case("external_symlink_out", "resolves outside", "link.bin", _outside_symlink),
    _external_case("external_missing", "does not exist", "weights.bin"),
    _external_case("external_short_file", "fewer than", "weights.bin", _write_data("weights.bin", _W_BYTES[:10])),
    _external_case("external_offset_past_end", "fewer than", "weights.bin", _write_data("weights.bin"), offset="4096"),
    _external_case("external_bad_offset", "not a non-negative integer", "weights.bin", _write_data("weights.bin"),
                   offset="-8"),
    _external_case("external_wrong_length", "length 8", "weights.bin", _write_data("weights.bin"), length="8"),
    _external_case("external_no_location", "without a location", None),
    _external_case("external_is_directory", "not a regular file", "datadir",
                   lambda folder: (folder / "datadir").mkdir()),
    # the file loads; check reports semantic problems, execution refuses what it cannot run
    _model_case("bitwidth_zero", "bitwidth must be an integer", _quant_input(3, 0.0), _illegal(exec=2)),
    _model_case("bitwidth_fraction", "bitwidth must be an integer", _quant_input(3, 2.5), _illegal(exec=2)),
    _model_case("bitwidth_negative", "bitwidth must be an integer", _quant_input(3, -4.0), _illegal(exec=2)),
    _model_case("scale_negative", "scale must be finite and > 0", _quant_input(1, -0.5), _illegal()),
    _model_case("scale_zero", "scale must be finite and > 0", _quant_input(1, 0.0), _illegal(exec=2)),
    _model_case("scale_nan", "scale must be finite and > 0", _quant_input(1, np.nan), _illegal(exec=2)),
    _model_case("zeropt_out_of_range", "zeropt must lie in", _quant_input(2, 100.0), _illegal()),
    _model_case("rounding_mode_unknown", "rounding_mode", _rounding_mode, _illegal(exec=2)),
    _model_case("quant_two_inputs", "takes inputs", _quant_two_inputs, _illegal(exec=2)),
    _model_case("unknown_qonnx_op", "no operator Quantize exists", _unknown_qonnx_op, _illegal(exec=2)),
    _model_case("add_float_int", "inconsistent type", _add_float_int, _codes()),
    _model_case("quant_declared_int8", "declared INT8", _quant_declared_int, _codes()),
    _model_case("float_quant_negative_mantissa", "mantissa_bitwidth", _float_quant_negative_mantissa,
                _illegal(exec=2)),
    _model_case("trunc_widens", "in_bitwidth must be >= out_bitwidth", _trunc_widens, _illegal()),
    _model_case("duplicate_node_names", "used by 2 nodes", _duplicate_node_names, _codes()),
    _model_case("unknown_op", "unknown operator", _unknown_op, _codes(check=0, exec=2)),
]


def build_all(root: str | os.PathLike, names: list[str] | None = None) -> list[tuple[Case, Path]]:
    """Build every case (or the named ones) under ``root``; returns (case, model path) pairs."""
    root = Path(root)
    built = []
    for case in CASES:
        if names is not None and case.name not in names:
            continue
        folder = root / case.name
        folder.mkdir(parents=True, exist_ok=True)
        case.build(folder)
        built.append((case, case.model_path(root)))
    return built


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: build_hostile.py OUTDIR", file=sys.stderr)
        return 2
    for case, path in build_all(argv[0]):
        print(f"{path}  expect {case.codes}  '{case.phrase}'")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
