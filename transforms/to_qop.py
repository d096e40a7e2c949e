"""Convert a QONNX model to QOp form (QLinearConv, QLinearMatMul; QDQ elsewhere).

    python transforms/to_qop.py IN.onnx OUT.onnx
    qonnx transform transforms/to_qop.py IN.onnx OUT.onnx

Refuses (ConversionError) when a QONNX node cannot be converted, rather than leave it behind.
"""

import sys

from qonnx_tools.convert import convert
from qonnx_tools.model_io import load, save


def transform(model):
    """Convert ``model`` (an onnx_ir Model from qonnx_tools.model_io.load) in place."""
    convert(model, to="qop")
    return model


def main(in_path: str, out_path: str) -> int:
    save(transform(load(in_path)), out_path)
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
