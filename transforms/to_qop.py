"""Convert a QONNX model to QOp form (QLinearConv, QLinearMatMul; ConvInteger/MatMulInteger with a
float epilogue where an exact QLinear form does not exist; QDQ elsewhere).

    python transforms/to_qop.py IN.onnx OUT.onnx
    qonnx transform transforms/to_qop.py IN.onnx OUT.onnx

Refuses (ConversionError) when a QONNX node cannot be converted, rather than leave it behind.
"""

import sys

from qonnx_tools.cli.main import main as qonnx_main
from qonnx_tools.convert import convert


def transform(model):
    """Convert ``model`` (an onnx_ir Model from qonnx_tools.model_io.load) in place."""
    convert(model, to="qop")
    return model


if __name__ == "__main__":  # same as: qonnx transform THIS_SCRIPT IN OUT [--force | --in-place]
    sys.exit(qonnx_main(["transform", __file__, *sys.argv[1:]]))
