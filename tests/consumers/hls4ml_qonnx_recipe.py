"""hls4ml on an *original* QONNX file through qonnx's documented recipe; one JSON line per file.

The recipe of hls4ml's QONNX front-end page: ``cleanup_model``, ``ConvertToChannelsLastAndClean``,
``GemmToMatMul``, ``cleanup_model``, then ``config_from_onnx_model(granularity="name",
default_precision="fixed<16,6>")`` (its default), convert, compile the C++ emulation with g++ and run it
on ``M.inputs.npz`` staged beside each file (one array, samples along axis 0, each reshaped to the
file's own input shape with batch 1 where the file allows, else run as given). Outputs go to
``M.hls4ml_out.npz``. Runs in the hls4ml venv (see test_hls4ml_consumer.py); used by
benchmarks/fpga_consumers.py to compare with ``prepare --target hls4ml`` on the same files.
"""

import os
import sys
import tempfile

from _script import report_each, staged_inputs


def recipe(path: str, workdir: str) -> dict:
    import hls4ml
    import numpy as np
    import qonnx.util.cleanup
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.transformation.channels_last import ConvertToChannelsLastAndClean
    from qonnx.transformation.gemm_to_matmul import GemmToMatMul

    stem, inputs = staged_inputs(path)
    (x,) = inputs.values()
    stage = "cleanup"
    try:
        model = qonnx.util.cleanup.cleanup_model(ModelWrapper(path))
        stage = "channels-last"
        model = model.transform(ConvertToChannelsLastAndClean())
        model = model.transform(GemmToMatMul())
        model = qonnx.util.cleanup.cleanup_model(model)
        stage = "convert"
        config = hls4ml.utils.config.config_from_onnx_model(model, granularity="name", backend="Vitis",
                                                            default_precision="fixed<16,6>")
        io_type = "io_stream" if any(n.op_type == "Conv" for n in model.graph.node) else "io_parallel"
        hls_model = hls4ml.converters.convert_from_onnx_model(
            model, output_dir=os.path.join(workdir, os.path.basename(stem)), io_type=io_type, backend="Vitis",
            hls_config=config)
        stage = "compile"
        hls_model.compile()
        stage = "predict"
        outputs = [np.asarray(hls_model.predict(np.ascontiguousarray(sample[None]))) for sample in x]
    except Exception as exc:
        raise type(exc)(f"[{stage}] {exc}") from exc
    np.savez(stem + ".hls4ml_out.npz", output=np.stack([o.reshape(-1) for o in outputs]))
    return {"outputs": stem + ".hls4ml_out.npz", "layers": [layer.class_name for layer in hls_model.get_layers()]}


def main(paths: list[str]) -> int:
    with tempfile.TemporaryDirectory() as workdir:
        return report_each(paths, lambda path: recipe(path, workdir))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
