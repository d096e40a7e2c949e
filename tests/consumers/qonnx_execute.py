"""Run each QONNX model file given with qonnx 1.0's own executor (``execute_onnx``); print one JSON line per file.

Runs in a separate Python environment that has qonnx 1.0 and onnxruntime (never in the project's own):
tests/consumers/test_quantize_consumers.py calls it with that interpreter on our ``quantize`` output.
(tests/consumers/qonnx_qcdq_read.py also ends in ``execute_onnx``, but it raises QCDQ first and cannot
fix a dynamic batch dimension, which ``execute_onnx`` needs: it fills its context from the graph's
declared shapes, where a symbolic dimension is 0, and refuses a fed array of any other shape.)

For model ``M.onnx`` the inputs are read from ``M.inputs.npz`` (keys: the graph inputs, one array with
the samples along axis 0, run as one batch) and the outputs written to ``M.qonnx_exec.npz`` (keys: the
graph outputs of ``M.onnx``; qonnx's cleanup renames them, so they are paired by position). Steps, as a
qonnx user would write them: ``ModelWrapper(path)``, ``cleanup_model(model, override_inpsize=N)``
(``qonnx.util.cleanup``: the batch dimension set to the staged batch N with ``ChangeBatchSize``, then
shapes, constant folding with the quantizers kept, renaming), ``execute_onnx``.

Each line: ``file``, ``ok`` (or ``error``, naming the step that raised), ``outputs``, ``names``,
``ops_before``/``ops_after`` (op type -> count around ``cleanup_model``, ``domain:op`` outside ai.onnx),
``qonnx`` (version), ``seconds``.
"""

import sys
import time

from _script import graph_io_names, op_counts, report_each, staged_inputs


def run(path: str) -> dict:
    from importlib.metadata import version

    import numpy as np
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx
    from qonnx.util.cleanup import cleanup_model

    stem, feeds = staged_inputs(path)
    model = ModelWrapper(path)
    input_names, output_names = graph_io_names(model.graph)
    batch = {int(np.asarray(v).shape[0]) for v in feeds.values()}
    if len(batch) != 1:
        raise ValueError(f"staged inputs disagree on the batch size: {sorted(batch)}")
    before = op_counts(model.graph)
    step = "cleanup_model"
    try:
        start = time.perf_counter()
        model = cleanup_model(model, override_inpsize=batch.pop())
        cleaned = time.perf_counter()
        step = "execute_onnx"
        new_inputs = [v.name for v in model.graph.input if model.get_initializer(v.name) is None]
        result = execute_onnx(model, {new: feeds[old] for old, new in zip(input_names, new_inputs)})
        done = time.perf_counter()
    except Exception as exc:
        raise RuntimeError(f"{step}: {type(exc).__name__}: {exc}") from exc
    arrays = [result[v.name] for v in model.graph.output]
    np.savez(stem + ".qonnx_exec.npz", **dict(zip(output_names, arrays)))
    return {"outputs": stem + ".qonnx_exec.npz", "names": output_names, "ops_before": before,
            "ops_after": op_counts(model.graph), "qonnx": version("qonnx"),
            "seconds": {"cleanup": round(cleaned - start, 3), "execute": round(done - cleaned, 3)}}


if __name__ == "__main__":
    sys.exit(report_each(sys.argv[1:], run))
