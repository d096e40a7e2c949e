"""Fold weight quantizers into float initializers (the quantized weight values, as floats).

    python transforms/fold_weights.py IN.onnx OUT.onnx

Runs the pipeline ``fold-constants{fold_quantizers=true}``: every quantizer whose inputs
are all constant (weights, scales, zero-points, bit widths) is evaluated once and
replaced by its output; activation quantizers stay. Outputs do not change.
"""

import sys

from qonnx_tools.model_io import load, save
from qonnx_tools.passes import run_passes

PIPELINE = "fold-constants{fold_quantizers=true},remove-dead"


def transform(model):
    run_passes(model, PIPELINE)
    return model


def main(in_path: str, out_path: str) -> int:
    save(transform(load(in_path)), out_path)
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
