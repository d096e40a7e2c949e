"""``qonnx quantize FLOAT.onnx -o OUT.onnx --calib DATA``: post-training quantization to QONNX."""

from __future__ import annotations

import argparse
import json

from qonnx_tools.cli._common import add_output_options, check_output_path, positive_int
from qonnx_tools.cli._progress import progress_bar
from qonnx_tools.model_io import load, save
from qonnx_tools.quantize import QuantizeConfig, load_config, quantize
from qonnx_tools.quantize.config import BIAS_MODES, METHODS, UNSIGNED_ACTS
from qonnx_tools.quantize.data import Batches


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("quantize", help="post-training quantization of a float model to QONNX (calibrated on data)")
    p.add_argument("model", help="float ONNX model")
    p.add_argument("--calib", required=True, metavar="DATA",
                   help="calibration data: an .npz keyed by input name, or a folder of .npy/.npz files")
    p.add_argument("--weights", type=positive_int, metavar="BITS", help="weight bit width (default 8; 1 = bipolar)")
    p.add_argument("--acts", type=positive_int, metavar="BITS", help="activation bit width (default 8; 1 = bipolar)")
    p.add_argument("--method", choices=METHODS, help="activation calibrator (default max; weights always use max)")
    p.add_argument("--percentile", type=float, help="with --method percentile: the percentile of |x| (default 99.99)")
    p.add_argument("--per-channel", action="store_true", default=None, help="one weight scale per output channel")
    p.add_argument("--unsigned-acts", choices=UNSIGNED_ACTS,
                   help="auto (default): unsigned where calibration saw no negative value")
    p.add_argument("--narrow", action="store_true", default=None,
                   help="signed activations use the symmetric range [-(2^(b-1)-1), 2^(b-1)-1] (weights always do)")
    p.add_argument("--pow2-scales", dest="pow2", action="store_true", default=None,
                   help="round every scale up to a power of two (fixed point, FINN/DPU)")
    p.add_argument("--bias", choices=BIAS_MODES, help="int32 (default): 32-bit at scale_in*scale_w; float: left as is")
    p.add_argument("--outputs", action="store_true", default=None, help="also quantize the graph outputs")
    p.add_argument("--joins", action="store_true", default=None, help="also quantize residual joins (Add/Sum/Concat)")
    p.add_argument("--config", metavar="FILE", help="TOML/JSON config: these options and per-layer [[layer]] rules")
    p.add_argument("--exclude", nargs="+", default=None, metavar="NAME",
                   help="node names (shell patterns) left float")
    p.add_argument("--batch-size", type=positive_int, help="calibration batch size (default: the model's, else 32)")
    p.add_argument("--limit", type=positive_int, metavar="N", help="calibrate on the first N samples only")
    p.add_argument("--json", action="store_true", help="print the report (every quantizer, its scale and clipping) as JSON")
    add_output_options(p, in_place=False, help="the quantized QONNX model")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    out = check_output_path(args.output, inputs=(args.model,), force=args.force, in_place=None)
    config = load_config(args.config) if args.config else QuantizeConfig()
    exclude = tuple(config.exclude) + tuple(args.exclude) if args.exclude else None
    model = load(args.model)
    batches = Batches(args.calib, model, args.batch_size, args.limit)
    result = quantize(
        model, batches, config, weights=args.weights, acts=args.acts, method=args.method,
        percentile=args.percentile, per_channel=args.per_channel, unsigned_acts=args.unsigned_acts,
        narrow=args.narrow, pow2=args.pow2, bias=args.bias, outputs=args.outputs, joins=args.joins,
        exclude=exclude, progress=progress_bar("calibrating"),
    )
    save(model, out)
    report = {"model": args.model, "output": str(out), **result.to_dict()}
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"calibrated on {result.samples} samples ({result.batches} batches); wrote {out}")
    print(f"{'tensor':<36} {'kind':<10} {'bits':>4} {'sign':>4} {'scale':>11} {'amax':>11} {'clipped':>8}")
    for t in result.tensors:
        scale = f"{t.scale_max:.4g}" if t.scale_min == t.scale_max else f"≤{t.scale_max:.4g}"
        clipped = "-" if t.clipped is None else f"{100 * t.clipped:.3f}%"
        print(f"{t.tensor[-36:]:<36} {t.kind:<10} {t.bits:>4} {'s' if t.signed else 'u':>4} {scale:>11} "
              f"{t.amax:>11.4g} {clipped:>8}")
    if result.float_nodes:
        print(f"left float: {', '.join(result.float_nodes)}")
    return 0
