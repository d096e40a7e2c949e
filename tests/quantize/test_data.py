"""Data sets from disk in batches (quantize.data) and top-1 accuracy (evaluate), against plain NumPy."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from qonnx_tools._ir import ir
from qonnx_tools.errors import BadInputError
from qonnx_tools.evaluate import top1_accuracy
from qonnx_tools.quantize.data import Batches, load_labels


def _linear(inputs=("x",), batch=None):
    w = np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32)
    nodes = [helper.make_node("MatMul", ["x", "w"], ["y"])]
    if len(inputs) == 2:
        nodes = [helper.make_node("Add", ["x", "z"], ["s"]), helper.make_node("MatMul", ["s", "w"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(n, TensorProto.FLOAT, [batch, 4]) for n in inputs],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 3])],
                              [numpy_helper.from_array(w, "w")])
    return ir.serde.deserialize_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])), w


def test_a_folder_is_recut_into_batches_in_order(tmp_path):
    data = np.arange(23 * 4, dtype=np.float32).reshape(23, 4)
    for i, (a, b) in enumerate(((0, 5), (5, 6), (6, 23))):  # files of 5, 1 and 17 samples
        np.save(tmp_path / f"part{i}.npy", data[a:b])
    model, _ = _linear()
    batches = Batches(tmp_path, model, batch_size=4)
    got = [b["x"] for b in batches]
    assert len(batches) == 6 and [len(b) for b in got] == [4, 4, 4, 4, 4, 3]
    np.testing.assert_array_equal(np.concatenate(got), data)
    limited = Batches(tmp_path, model, batch_size=4, limit=9)
    assert [len(b["x"]) for b in limited] == [4, 4, 1] and limited.samples == 9


def test_npz_keys_labels_and_refusals(tmp_path):
    x, z = np.ones((6, 4), np.float32), np.zeros((6, 4), np.float32)
    np.savez(tmp_path / "two.npz", x=x, z=z, y=np.arange(6))
    model, _ = _linear(("x", "z"))
    assert [sorted(b) for b in Batches(tmp_path / "two.npz", model, 4)] == [["x", "z"], ["x", "z"]]
    assert load_labels("y", tmp_path / "two.npz").tolist() == list(range(6))
    np.savez(tmp_path / "other.npz", a=x)
    with pytest.raises(BadInputError, match=r"other.npz: holds \['a'\]; the model's inputs are \['x', 'z'\]"):
        Batches(tmp_path / "other.npz", model)
    np.savez(tmp_path / "ragged.npz", x=x, z=z[:5])
    with pytest.raises(BadInputError, match="share a first"):
        Batches(tmp_path / "ragged.npz", model)
    with pytest.raises(BadInputError, match="no such file"):
        Batches(tmp_path / "missing.npz", model)
    with pytest.raises(BadInputError, match="1-D integer"):
        np.save(tmp_path / "f.npy", np.zeros(3, np.float32))
        load_labels(tmp_path / "f.npy")
    one, _ = _linear()
    np.savez(tmp_path / "single.npz", anything=x)  # a one-input model takes a lone array under any key
    assert len(list(Batches(tmp_path / "single.npz", one, 32))) == 1


def test_batch_defaults_to_the_models_fixed_batch(tmp_path):
    fixed, _ = _linear(batch=1)
    free, _ = _linear()
    from qonnx_tools.quantize.data import default_batch_size

    assert default_batch_size(fixed) == 1 and default_batch_size(free) == 32
    np.savez(tmp_path / "d.npz", x=np.zeros((40, 4), np.float32))
    assert [len(b["x"]) for b in Batches(tmp_path / "d.npz", fixed)] == [1] * 40
    assert [len(b["x"]) for b in Batches(tmp_path / "d.npz", free)] == [32, 8]


@pytest.mark.parametrize("backend", ["numpy", "onnxruntime"])
def test_top1_counts_argmax_hits(tmp_path, backend):
    model, w = _linear()
    x = np.random.default_rng(1).normal(size=(50, 4)).astype(np.float32)
    labels = (x @ w).argmax(axis=1)
    labels[::5] = (labels[::5] + 1) % 3  # 10 of 50 wrong on purpose
    np.savez(tmp_path / "d.npz", x=x)
    result = top1_accuracy(model, Batches(tmp_path / "d.npz", model, 8), labels, backend=backend)
    assert (result.correct, result.samples) == (40, 50) and result.top1 == 0.8
    with pytest.raises(BadInputError, match="49 labels but 50 samples|labels for more samples"):
        top1_accuracy(model, Batches(tmp_path / "d.npz", model, 8), labels[:49], backend=backend)
