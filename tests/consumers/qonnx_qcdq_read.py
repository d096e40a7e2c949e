"""Raise each QCDQ model file given back to QONNX with qonnx 1.0's ``QCDQToQuant`` and run the
result with qonnx's ``execute_onnx``; print one JSON line per file.

Runs in a separate Python environment that has qonnx 1.0 and onnxruntime (never in the
project's own): tests/consumers/test_qonnx_qcdq_consumer.py calls it with that interpreter.

For model ``M.onnx`` the inputs are read from ``M.inputs.npz`` (keys: the graph inputs) and
the outputs written to ``M.qonnx.npz`` (keys: the graph outputs of ``M.onnx``; qonnx's
cleanup renames them, so they are paired by position). Steps, as a qonnx user would write
them: ``ModelWrapper(path)``, ``cleanup_model`` (shapes and value_info, which QCDQToQuant
needs), ``model.transform(QCDQToQuant())`` (``qonnx.transformation.qcdq_to_qonnx``),
``cleanup_model`` again (shapes of the new Quant nodes), ``execute_onnx``.

Each line: ``file``, ``ok`` (or ``error``, naming the step that raised), ``outputs``,
``ops_before``/``ops_after`` (op type -> count around QCDQToQuant, ``domain:op`` outside
ai.onnx), ``quant_nodes`` (QONNX Quant nodes in the raised model), ``seconds``.
"""

import sys
import time

from _script import graph_io_names, op_counts, report_each, staged_inputs


def run(path: str) -> dict:
    import numpy as np
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx
    from qonnx.transformation.qcdq_to_qonnx import QCDQToQuant
    from qonnx.util.cleanup import cleanup_model

    stem, feeds = staged_inputs(path)
    model = ModelWrapper(path)
    input_names, output_names = graph_io_names(model.graph)
    step = "cleanup_model"
    try:
        start = time.perf_counter()
        model = cleanup_model(model)
        before = op_counts(model.graph)
        step = "QCDQToQuant"
        model = model.transform(QCDQToQuant())
        step = "cleanup_model after QCDQToQuant"
        model = cleanup_model(model)
        raised = time.perf_counter()
        step = "execute_onnx"
        new_inputs = [v.name for v in model.graph.input if model.get_initializer(v.name) is None]
        result = execute_onnx(model, {new: feeds[old] for old, new in zip(input_names, new_inputs)})
        done = time.perf_counter()
    except Exception as exc:
        raise RuntimeError(f"{step}: {type(exc).__name__}: {exc}") from exc
    arrays = [result[v.name] for v in model.graph.output]
    np.savez(stem + ".qonnx.npz", **dict(zip(output_names, arrays)))
    after = op_counts(model.graph)
    quant = sum(n for op, n in after.items() if op.endswith(":Quant"))
    return {"outputs": stem + ".qonnx.npz", "names": output_names, "ops_before": before, "ops_after": after,
            "quant_nodes": quant,
            "seconds": {"raise": round(raised - start, 3), "execute": round(done - raised, 3)}}


if __name__ == "__main__":
    sys.exit(report_each(sys.argv[1:], run))
