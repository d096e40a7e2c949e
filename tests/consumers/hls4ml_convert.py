"""Run hls4ml's QONNX -> HLS model conversion (no synthesis) on each file given; print one JSON line per file.

Runs in a separate Python environment that has hls4ml and qonnx (never in the
project's own): tests/consumers/test_hls4ml_consumer.py calls it with that interpreter.
"""

import os
import sys
import tempfile

from _script import report_each


def convert(path: str, workdir: str) -> dict:
    import hls4ml
    from qonnx.core.modelwrapper import ModelWrapper

    model = ModelWrapper(path)
    config = hls4ml.utils.config.config_from_onnx_model(
        model, granularity="name", backend="Vitis", default_precision="fixed<16,6>"
    )
    hls_model = hls4ml.converters.convert_from_onnx_model(
        model, output_dir=os.path.join(workdir, os.path.basename(path)), io_type="io_parallel",
        backend="Vitis", hls_config=config,
    )
    return {"layers": [layer.class_name for layer in hls_model.get_layers()]}


def main(paths: list[str]) -> int:
    with tempfile.TemporaryDirectory() as workdir:
        return report_each(paths, lambda path: convert(path, workdir))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
