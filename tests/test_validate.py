"""Validation of model files before the IR is built, and the dependency order of proto nodes.

Most refusals are exercised end to end by tests/test_check.py and tests/hostile.
"""

from __future__ import annotations

import onnx
import pytest
from onnx import TensorProto, helper

from qonnx_tools import model_io
from qonnx_tools.errors import ModelLoadError
from qonnx_tools.validate import ERROR, find_cycle, topological_indices, validate_proto


@pytest.mark.parametrize("content", [b"", b"not a protobuf at all", b"\x08\x07\x12"])
def test_unreadable_files_raise_model_load_error(tmp_path, content):
    path = tmp_path / "bad.onnx"
    path.write_bytes(content)
    with pytest.raises(ModelLoadError, match="bad.onnx"):
        model_io.load(path)


def test_missing_file(tmp_path):
    with pytest.raises(ModelLoadError, match="no such file"):
        model_io.load(tmp_path / "absent.onnx")


# -- the Kahn sort shared by validate_proto (cycles) and check (visiting order) ----------------


def _graph(*nodes: tuple[str, list[str], list[str]], outputs=("y",)) -> onnx.GraphProto:
    return helper.make_graph(
        [helper.make_node("Relu" if len(i) == 1 else "Add", i, o, name=n) for n, i, o in nodes],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, [1]) for name in outputs],
    )


def _names(graph: onnx.GraphProto, indices: list[int]) -> list[str]:
    return [graph.node[i].name for i in indices]


def test_topological_indices_orders_an_unsorted_graph():
    graph = _graph(("c", ["b"], ["y"]), ("b", ["a"], ["b"]), ("a", ["x"], ["a"]))
    assert _names(graph, topological_indices(graph)) == ["a", "b", "c"]
    assert find_cycle(graph) == []


def test_topological_indices_follows_the_node_made_ready_last():
    # ready at the start: p and q in file order; p makes r ready, which goes before q
    graph = _graph(("p", ["x"], ["a"]), ("q", ["x"], ["b"]), ("r", ["a"], ["c"]), ("s", ["b", "c"], ["y"]))
    assert _names(graph, topological_indices(graph)) == ["p", "r", "q", "s"]


def test_nodes_on_or_behind_a_cycle_are_left_out_and_the_cycle_is_found():
    graph = _graph(
        ("first", ["x"], ["a"]),
        ("loop1", ["a", "c"], ["b"]),
        ("loop2", ["b"], ["c"]),
        ("after", ["c"], ["y"]),
    )
    assert _names(graph, topological_indices(graph)) == ["first"]
    assert _names(graph, find_cycle(graph)) == ["loop2", "loop1"]  # producer before consumer
    (finding,) = [f for f in validate_proto(helper.make_model(graph), "m.onnx") if "cycle" in f.message]
    assert finding.severity == ERROR
    assert finding.message == "graph 'g' has a cycle: 'loop2' -> 'loop1' -> 'loop2'"


def test_self_loop_is_a_cycle():
    graph = _graph(("self", ["x", "y"], ["y"]))
    assert topological_indices(graph) == []
    assert _names(graph, find_cycle(graph)) == ["self"]


def test_values_a_subgraph_reads_from_outside_are_dependencies():
    branch = helper.make_graph(
        [helper.make_node("Identity", ["late"], ["out"])], "branch", [],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1])],
    )
    graph = helper.make_graph(
        [
            helper.make_node("If", ["cond"], ["y"], name="if", then_branch=branch, else_branch=branch),
            helper.make_node("Relu", ["x"], ["late"], name="producer"),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1]), helper.make_tensor_value_info("cond", TensorProto.BOOL, [])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    assert _names(graph, topological_indices(graph)) == ["producer", "if"]
    # and a subgraph reading the node's own output closes a cycle
    graph.node[1].input[0] = "y"
    assert _names(graph, find_cycle(graph)) == ["producer", "if"]


def test_explicit_producers_decide_the_dependencies():
    # by default a node writing a graph input it reads is a self-loop...
    graph = _graph(("twice", ["x"], ["x"]), ("use", ["x"], ["y"]))
    assert topological_indices(graph) == []
    assert _names(graph, find_cycle(graph)) == ["twice"]
    # ...but validate_proto's producer map leaves such outputs out: "produced twice", no cycle
    assert _names(graph, topological_indices(graph, {"y": 1})) == ["twice", "use"]
    assert find_cycle(graph, {"y": 1}) == []
    messages = [f.message for f in validate_proto(helper.make_model(graph), "m.onnx")]
    assert messages == ["output 'x' is also a graph input (produced twice)"]
