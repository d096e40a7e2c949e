"""Import each model file given with TVM's Relax ONNX frontend, build it for llvm and run it with
the Relax VM; print one JSON line per file.

Runs in a separate Python environment that has apache-tvm, onnx and numpy (never in the
project's own): tests/consumers/test_tvm_consumer.py calls it with that interpreter.

For model ``M.onnx`` the inputs are read from ``M.inputs.npz`` (keys: the graph inputs) and
the outputs written to ``M.tvm.npz`` (keys: the graph outputs). Steps:
``tvm.relax.frontend.onnx.from_onnx(model)`` (weights folded in as constants),
``tvm.compile(mod, target="llvm")``, ``relax.VirtualMachine(executable, tvm.cpu())["main"]``.

Each line: ``file``, ``ok`` (or ``error``, naming the step that raised), ``outputs`` (the .npz
written), ``seconds`` (import, build, run) and ``ops`` (the ONNX op types of the file).
"""

import sys
import time

from _script import graph_io_names, report_each, staged_inputs


def _flatten(result) -> list:
    """The Relax VM's result (one tensor or a nested tuple of them) as a flat list of NumPy arrays."""
    if hasattr(result, "numpy"):
        return [result.numpy()]
    return [array for item in result for array in _flatten(item)]


def run(path: str) -> dict:
    import numpy as np
    import onnx
    import tvm
    from tvm import relax
    from tvm.relax.frontend.onnx import from_onnx

    stem, feeds = staged_inputs(path)
    model = onnx.load(path)
    input_names, output_names = graph_io_names(model.graph)
    step = "import"
    try:
        start = time.perf_counter()
        mod = from_onnx(model, keep_params_in_input=False)
        imported = time.perf_counter()
        step = "build"
        executable = tvm.compile(mod, target="llvm")
        built = time.perf_counter()
        step = "run"
        vm = relax.VirtualMachine(executable, tvm.cpu())
        arrays = _flatten(vm["main"](*[tvm.runtime.tensor(np.ascontiguousarray(feeds[n])) for n in input_names]))
        done = time.perf_counter()
    except Exception as exc:
        raise RuntimeError(f"{step}: {type(exc).__name__}: {str(exc).strip()[-1500:]}") from exc
    if len(arrays) != len(output_names):
        raise RuntimeError(f"run: {len(arrays)} results for {len(output_names)} graph outputs")
    np.savez(stem + ".tvm.npz", **dict(zip(output_names, arrays)))
    return {"outputs": stem + ".tvm.npz", "names": output_names,
            "ops": sorted({node.op_type for node in model.graph.node}),
            "seconds": {"import": round(imported - start, 3), "build": round(built - imported, 3),
                        "run": round(done - built, 3)}}


if __name__ == "__main__":
    sys.exit(report_each(sys.argv[1:], run))
