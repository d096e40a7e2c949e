"""``qonnx eval MODEL --data DATA --labels LABELS``: top-1 accuracy over a labelled data set."""

from __future__ import annotations

import argparse
import json

from qonnx_tools.cli._common import positive_int
from qonnx_tools.cli._progress import progress_bar
from qonnx_tools.evaluate import BACKENDS, top1_accuracy
from qonnx_tools.model_io import load
from qonnx_tools.quantize.data import Batches, load_labels


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="top-1 accuracy of a model over a labelled data set")
    p.add_argument("model", help="ONNX/QONNX model file")
    p.add_argument("--data", required=True, help="inputs: an .npz keyed by input name, or a folder of .npy/.npz files")
    p.add_argument("--labels", required=True,
                   help="integer labels: an .npy file, or the name of an array in the --data .npz (e.g. y)")
    p.add_argument("--backend", choices=BACKENDS, default="numpy", help="numpy (our executor, default) or onnxruntime")
    p.add_argument("--output-name", help="the output holding class scores (default: the first)")
    p.add_argument("--batch-size", type=positive_int, help="default: the model's batch, else 32")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    model = load(args.model)
    labels = load_labels(args.labels, args.data)
    batches = Batches(args.data, model, args.batch_size)
    result = top1_accuracy(model, batches, labels, backend=args.backend, output=args.output_name,
                           progress=progress_bar("evaluating"))
    if args.json:
        print(json.dumps({"model": args.model, **result.to_dict()}, indent=2))
    else:
        print(f"top-1 {100 * result.top1:.2f}% ({result.correct}/{result.samples}, {result.backend})")
    return 0
