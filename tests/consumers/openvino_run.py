"""Run each model file given in OpenVINO's CPU plugin; print one JSON line per file.

Runs in a separate Python environment that has openvino and numpy (never in the project's
own): tests/consumers/test_openvino_consumer.py calls it with that interpreter.

For model ``M.onnx`` the inputs are read from ``M.inputs.npz`` (keys: the graph inputs). The
model is read with ``Core.read_model`` and compiled for ``CPU`` with
``INFERENCE_PRECISION_HINT=f32`` (no bf16/f16 downcast) twice, each compiled model run once:

* ``int8``: the plugin's defaults otherwise, as a user gets it: its low-precision
  transformations turn recognised QDQ patterns into integer kernels; outputs in
  ``M.openvino_int8.npz``;
* ``f32``: also ``LP_TRANSFORMS_MODE=False`` (a CPU-plugin property that switches the
  low-precision transformations off), so the graph is computed in float as written; outputs
  in ``M.openvino_f32.npz``.

Output keys are the compiled model's output tensor names. Each line: ``file``, ``ok`` (or
``error``), ``runs``: per run ``outputs`` (the .npz written) or ``error``, and ``seconds``
(compile, infer); and ``layers``: every node of the int8 run's
``compiled.get_runtime_model()`` in execution order with its runtime info (``layerType``,
``runtimePrecision``, ``outputPrecisions``, ``primitiveType``, ``originalLayersNames``),
which says which layers ran on integers (u8/i8).
"""

import sys
import time

from _script import report_each, staged_inputs

RUNTIME_INFO = ("layerType", "runtimePrecision", "outputPrecisions", "primitiveType", "originalLayersNames")
RUNS = {"int8": {}, "f32": {"LP_TRANSFORMS_MODE": False}}


def _info(rt, key: str) -> str:
    return rt[key].astype(str) if key in rt else ""


def _run_once(core, path: str, stem: str, name: str, inputs: dict) -> tuple[dict, object]:
    import numpy as np

    config = {"INFERENCE_PRECISION_HINT": "f32", **RUNS[name]}
    start = time.perf_counter()
    compiled = core.compile_model(core.read_model(path), "CPU", config)
    compiled_at = time.perf_counter()
    results = compiled.create_infer_request().infer(inputs)
    done = time.perf_counter()
    outputs = {port.get_any_name(): np.asarray(results[port]) for port in compiled.outputs}
    np.savez(f"{stem}.openvino_{name}.npz", **outputs)
    return {"outputs": f"{stem}.openvino_{name}.npz", "names": list(outputs),
            "seconds": {"compile": round(compiled_at - start, 3), "infer": round(done - compiled_at, 3)}}, compiled


def run(path: str) -> dict:
    import openvino as ov

    stem, inputs = staged_inputs(path)
    core = ov.Core()
    runs, layers = {}, []
    for name in RUNS:
        try:
            runs[name], compiled = _run_once(core, path, stem, name, inputs)
        except Exception as exc:  # the other run may still work: report each
            runs[name] = {"error": f"{type(exc).__name__}: {str(exc).strip()[-1500:]}"}
            continue
        if name == "int8":
            for op in compiled.get_runtime_model().get_ordered_ops():
                rt = op.get_rt_info()
                layers.append({"name": op.get_friendly_name(), **{key: _info(rt, key) for key in RUNTIME_INFO}})
    return {"openvino": ov.get_version(), "runs": runs, "layers": layers}


if __name__ == "__main__":
    sys.exit(report_each(sys.argv[1:], run))
