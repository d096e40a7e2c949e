"""Fold weight quantizers into float initializers (the quantized weight values, as floats).

    python transforms/fold_weights.py IN.onnx OUT.onnx

Runs the pipeline ``fold-constants{fold_quantizers=true}``: every quantizer whose inputs
are all constant (weights, scales, zero-points, bit widths) is evaluated once and
replaced by its output; activation quantizers stay. Outputs do not change.
"""

import sys

from qonnx_tools.cli.main import main as qonnx_main
from qonnx_tools.passes import run_passes

PIPELINE = "fold-constants{fold_quantizers=true},remove-dead"


def transform(model):
    run_passes(model, PIPELINE)
    return model


if __name__ == "__main__":  # same as: qonnx transform THIS_SCRIPT IN OUT [--force | --in-place]
    sys.exit(qonnx_main(["transform", __file__, *sys.argv[1:]]))
