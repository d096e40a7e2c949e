"""``qonnx convert --to {qcdq,qop,qonnx} MODEL -o OUT``: change a model's quantization form.

With ``--verify`` the converted model is run (``auto``: onnxruntime with
optimisations off when it has only standard ops and onnxruntime can load it, else
the executor) against the NumPy executor on the original, under
``qonnx_tools.verify``'s rule (``--atol/--rtol/--max-steps/--max-off-fraction``,
the same defaults as ``qonnx verify``); exit 1 and nothing written when they differ.
When onnxruntime runs the result, its optimised sessions are run and reported too
(``qonnx_tools.verify.verify_deployment``): every optimisation but
WeightBiasQuantization, and onnxruntime as it comes. They measure onnxruntime's
kernels on this CPU, not the file, and do not decide the exit code.

Nodes left unconverted are listed one line per reason with a count (``--verbose``: one
line per node, ``--json``: every node and the ``groups``); unless ``--allow-partial``,
such a conversion is refused: exit 1, nothing written. ``--fold-batchnorm`` and
``--requantize-bias`` are ``to_qop``'s options (``qonnx_tools.convert.qop``).
"""

from __future__ import annotations

import argparse
import json
import os

from qonnx_tools.cli._common import (
    add_input_options,
    add_output_options,
    add_verify_options,
    check_output_path,
    gather_inputs,
    op_table,
    tolerance_from_args,
)
from qonnx_tools.convert import (
    ACTIVATION_TYPE_FLAG, FLOAT_EPILOGUE_FLAG, FOLD_BATCHNORM_FLAG, TARGET_FLAG, OPSET_FLAG, REQUANTIZE_BIAS_FLAG, TARGETS, ConversionResult, convert,
)
from qonnx_tools.errors import BadInputError, ConversionError, VerificationError
from qonnx_tools.info import op_counts
from qonnx_tools.model_io import load, save
from qonnx_tools.refusals import Refused, format_refusals, group_dicts, refused_report, summary
from qonnx_tools.verify import DeploymentVerification, reference_run, verify_deployment


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("convert", help="convert between QONNX, QCDQ and QOp forms")
    p.add_argument("model", help="ONNX/QONNX model file")
    p.add_argument("--to", required=True, choices=TARGETS,
                   help="the form to convert to (required): qcdq (QuantizeLinear -> Clip -> DequantizeLinear), "
                        "qop (QLinearConv/QLinearMatMul), qonnx (QONNX Quant ops)")
    p.add_argument(OPSET_FLAG, dest="opset", type=int, metavar="N",
                   help="qcdq/qop: ai.onnx opset of the result (default: qcdq: the model's, raised to the lowest "
                        "that expresses every quantizer; qop: the model's, never lowered)")
    p.add_argument(TARGET_FLAG, dest="target", choices=("ort", "openvino", "tvm", "tensorrt"), default=None,
                   help="qcdq: the runtime the file is for (default ort). openvino and tvm get the plain lowering (run "
                        "exactly by both in tests/consumers); ort adds three exact rewrites so that onnxruntime fuses "
                        "more layers (BatchNormalization folded where every output code is proved unchanged, Relu "
                        "before a clamping quantizer removed, clipped int8 activations in uint8); tensorrt writes TensorRT's explicit "
                        "quantization form (symmetric int8, zero-point 0, int8 weights -> DequantizeLinear, no Clip) "
                        "and refuses what it cannot express exactly (sub-8-bit, unsigned or narrow activations, "
                        "non-zero zero-points, weight integers reaching -128), never partially")
    p.add_argument("--keep-float-weights", action="store_true",
                   help="qcdq: keep float weights behind QuantizeLinear -> Clip -> DequantizeLinear (default: off, "
                        "weights become integer constants -> DequantizeLinear)")
    p.add_argument("--allow-partial", action="store_true",
                   help="write the result even if some nodes stay unconverted (default: off, such a model is "
                        "refused: exit 1, nothing written)")
    qop = p.add_argument_group("QOp options (with --to qop only)")
    qop.add_argument(FOLD_BATCHNORM_FLAG, dest="fold_batchnorm", action="store_true", default=None,
                     help="fold an inference BatchNormalization between a layer and its output quantizer into "
                          "per-channel weight scales and the int32 bias also where that cannot be proved exact "
                          "(default: off: only the provably exact folds are made, the other layers take the float "
                          "epilogue). Not exact: the folded bias is rounded to int32 at x_scale * w_scale (as with "
                          "--requantize-bias), so an output near a rounding tie can move by one quantization step; "
                          "the notes give each layer's largest bias change in output steps")
    qop.add_argument(REQUANTIZE_BIAS_FLAG, dest="requantize_bias", action=argparse.BooleanOptionalAction,
                     default=None,
                     help="a bias not exactly at scale x_scale * w_scale (a float bias, another scale, a folded "
                          "BatchNormalization, Gemm alpha/beta) is rounded to int32 at that scale, giving "
                          "QLinearConv: each bias value moves by at most half of x_scale * w_scale, which can move "
                          "an output near a rounding tie by one quantization step; the notes give each layer's "
                          "largest change in output steps (default: off: such a layer becomes ConvInteger/"
                          "MatMulInteger with its bias in float, exact; with --no-float-epilogue it is refused)")
    qop.add_argument(ACTIVATION_TYPE_FLAG, dest="activation_type", choices=("uint8", "int8"), default=None,
                     help="container of the integer activations (default uint8: int8 activation quantizers move to "
                          "uint8 with the zero point + 128, exact; onnxruntime's x86 integer kernels take uint8 "
                          "activations and run int8 ones on a slower path)")
    qop.add_argument(FLOAT_EPILOGUE_FLAG, dest="float_outputs", action=argparse.BooleanOptionalAction, default=None,
                     help="a layer with quantized input and weight but no output quantizer (its output feeds "
                          "BatchNormalization, a float op or a graph output) becomes ConvInteger/MatMulInteger with "
                          "the rescale and bias in float, and what follows stays float (default: on; exact, but "
                          "onnxruntime's ConvInteger is slower than QLinearConv: 2.6-3.3x our QCDQ on bnn_cnv_2w2a "
                          "and residual_shared_quant). --no-float-epilogue leaves such layers unconverted")
    add_verify_options(p, help="compare outputs before/after (see --inputs/--random): the original in the executor, "
                               "the result in onnxruntime with optimisations off when it can run it (else the "
                               "executor); exit 1 and nothing written when they differ. onnxruntime's optimised runs "
                               "(without and with WeightBiasQuantization) are reported too, not judged (default: off)")
    add_input_options(p, random_by_default=True)
    p.add_argument("--verbose", action="store_true",
                   help="list unconverted nodes one line each, naming node, op, reason and the values it is about "
                        "(default: one line per reason, with a count and a few node names)")
    p.add_argument("--json", action="store_true",
                   help="print the report as JSON, with every unconverted node and their 'groups' with counts "
                        "(default: text)")
    add_output_options(p, help="output model file (required)")
    p.set_defaults(run=run)


#: Options that apply to some targets only: (dest, flag, targets).
_TARGET_OPTIONS = (
    ("opset", OPSET_FLAG, ("qcdq", "qop")),
    ("keep_float_weights", "--keep-float-weights", ("qcdq",)),
    ("target", TARGET_FLAG, ("qcdq",)),
    ("fold_batchnorm", FOLD_BATCHNORM_FLAG, ("qop",)),
    ("requantize_bias", REQUANTIZE_BIAS_FLAG, ("qop",)),
    ("activation_type", ACTIVATION_TYPE_FLAG, ("qop",)),
    ("float_outputs", FLOAT_EPILOGUE_FLAG, ("qop",)),
)


def _check_target_options(args: argparse.Namespace) -> None:
    for dest, flag, targets in _TARGET_OPTIONS:
        value = getattr(args, dest)
        if value is None or (value is False and dest == "keep_float_weights"):
            continue
        if args.to not in targets:
            shown = f"--no-{flag[2:]}" if value is False and dest in ("requantize_bias", "float_outputs") else flag
            raise BadInputError(f"{shown} applies to --to {' or '.join(targets)} only, not --to {args.to}")


def run(args: argparse.Namespace) -> int:
    _check_target_options(args)
    tolerance = tolerance_from_args(args, needs_verify=True)
    out = check_output_path(args.output, inputs=(args.model,), force=args.force, in_place=args.in_place)
    model = load(args.model, legal_qonnx=True)
    bytes_before = os.path.getsize(args.model)
    before = op_counts(model), dict(model.opset_imports)
    reference = None
    if args.verify:
        reference = reference_run(model, gather_inputs(args, model))
    options = {"allow_partial": True}  # refused below, after the report (grouped, not one long error line)
    if args.to in ("qcdq", "qop"):
        options["opset"] = args.opset
    if args.to == "qcdq":
        options["keep_float_weights"] = args.keep_float_weights
        options["target"] = args.target
    if args.to == "qop":
        options["fold_batchnorm"] = bool(args.fold_batchnorm)
        options["requantize_bias"] = bool(args.requantize_bias)
        options["activation_type"] = args.activation_type or "uint8"
        options["float_outputs"] = args.float_outputs is not False
    try:
        result = convert(model, to=args.to, **options)
    except Refused as refused:  # refused before anything was lowered: grouped lines, then one error line
        if args.json:
            print(json.dumps({"model": args.model, "to": args.to, "written": False,
                              "unconverted": [str(u) for u in refused.items],
                              "groups": group_dicts(refused.refusals)}, indent=2))
        else:
            print("\n".join([f"{args.model} -> {out} ({args.to})", *refused_report(refused, verbose=args.verbose)]))
        raise ConversionError(f"{refused.summary}; nothing written") from refused
    report = {
        "model": args.model,
        "to": args.to,
        "ops_before": dict(before[0]),
        "ops_after": dict(op_counts(model)),
        "opsets_before": {k or "ai.onnx": v for k, v in before[1].items()},
        "opsets_after": {k or "ai.onnx": v for k, v in model.opset_imports.items()},
        "unconverted": [str(u) for u in result.unconverted],
        "groups": group_dicts(result.unconverted),
        "notes": list(result.notes),
    }
    refused = bool(result.unconverted) and not args.allow_partial
    verified: DeploymentVerification | None = None
    if reference is not None and not refused:
        verified = verify_deployment(reference, model, tolerance=tolerance)
        report["verify"] = verified.to_dict()
    report["bytes_before"] = bytes_before
    report["output"] = str(out)
    if refused or (verified is not None and not verified.ok):
        # a refused conversion or a failed verification is a failed run: nothing is written
        report["bytes_after"] = None
        report["written"] = False
        if args.json:
            print(json.dumps(report, indent=2))
        elif refused:  # what was refused, not the partial result's op table and notes (nothing is written)
            print("\n".join([f"{args.model} -> {out} ({args.to}): refused", *_not_converted(result, args.verbose)]))
        else:
            print(_format(report, result, args.verbose, verified))
        if refused:
            raise ConversionError(
                f"{len(result.unconverted)} node(s) not converted to {args.to}; nothing written "
                "(--allow-partial writes the partial conversion)"
            )
        raise VerificationError(
            f"{args.model}: converted model differs beyond tolerance (outputs {verified.mismatched}); {out} not written"
        )
    save(model, out)
    report["bytes_after"] = os.path.getsize(out)
    report["written"] = True
    print(json.dumps(report, indent=2) if args.json else _format(report, result, args.verbose, verified))
    return 0


def _format(report: dict, result: ConversionResult, verbose: bool,
            verified: DeploymentVerification | None = None) -> str:
    lines = [f"{report['model']} -> {report['output']} ({report['to']})"]
    lines += op_table(report["ops_before"], report["ops_after"], indent="  ", width=44)
    fmt = lambda d: ", ".join(f"{k}={v}" for k, v in sorted(d.items()))  # noqa: E731
    lines.append(f"  opsets: {fmt(report['opsets_before'])} -> {fmt(report['opsets_after'])}")
    after = "not written" if report["bytes_after"] is None else f"{report['bytes_after']} bytes"
    lines.append(f"  file size: {report['bytes_before']} bytes -> {after}")
    per_node = {str(c) for c in result.converted}
    for note in report["notes"]:
        if verbose or note not in per_node:
            lines.append(f"  note: {note}")
    if result.converted and not verbose:
        forms = len({(c.op, c.reason) for c in result.converted})
        lines.append(f"  quantizers lowered: {len(result.converted)} node(s) in {forms} form(s) "
                     "(--verbose: one line per node)")
        lines += format_refusals(result.converted, verbose=False, indent="    ")
    lines += _not_converted(result, verbose)
    if verified is not None:
        lines.append(verified.format(indent="  "))
    return "\n".join(lines)


def _not_converted(result: ConversionResult, verbose: bool) -> list[str]:
    """The unconverted nodes: one line per reason with a count, or (``verbose``) one line per node."""
    if not result.unconverted:
        return []
    count = summary(result.unconverted, "node(s)")
    head = f"  not converted: {count}" + ("" if verbose else " (--verbose: one line per node)")
    return [head, *format_refusals(result.unconverted, verbose=verbose, indent="    ")]
