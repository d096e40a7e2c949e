"""Convert each file given with hls4ml, compile its C++ emulation (g++) and run it; print one JSON line per file.

Runs in a separate Python environment that has hls4ml and qonnx (never in the project's own):
tests/consumers/test_hls4ml_consumer.py calls it with that interpreter. Beside each model ``M.onnx``
the test stages ``M.inputs.npz`` (one array, samples along axis 0, each run as a batch of one) and
``M.hls4ml.json`` (our ``hls4ml_config``: a model default precision and per-layer result precisions,
merged into hls4ml's own name-granularity configuration, and the I/O type). The outputs go to ``M.hls4ml_out.npz``.
"""

import json
import os
import sys
import tempfile

from _script import report_each, staged_inputs


def emulate(path: str, workdir: str) -> dict:
    import hls4ml
    import numpy as np
    from qonnx.core.modelwrapper import ModelWrapper

    stem, inputs = staged_inputs(path)
    (x,) = inputs.values()
    with open(stem + ".hls4ml.json") as f:
        ours = json.load(f)
    model = ModelWrapper(path)
    config = hls4ml.utils.config.config_from_onnx_model(
        model, granularity="name", backend="Vitis", default_precision=ours["Model"]["Precision"]["default"])
    for name, layer in ours["LayerName"].items():
        config["LayerName"].setdefault(name, {}).setdefault("Precision", {}).update(layer["Precision"])
    io_type = ours.get("IOType", "io_parallel")
    hls_model = hls4ml.converters.convert_from_onnx_model(
        model, output_dir=os.path.join(workdir, os.path.basename(stem)), io_type=io_type, backend="Vitis",
        hls_config=config)
    hls_model.compile()
    outputs = [np.asarray(hls_model.predict(np.ascontiguousarray(sample[None]))) for sample in x]
    np.savez(stem + ".hls4ml_out.npz", output=np.stack([o.reshape(-1) for o in outputs]))
    return {
        "outputs": stem + ".hls4ml_out.npz",
        "layers": [layer.class_name for layer in hls_model.get_layers()],
        "precisions": {layer.name: str(layer.get_output_variable().type.precision) for layer in hls_model.get_layers()},
    }


def main(paths: list[str]) -> int:
    with tempfile.TemporaryDirectory() as workdir:
        return report_each(paths, lambda path: emulate(path, workdir))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
