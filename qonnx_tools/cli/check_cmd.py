"""``qonnx check MODEL [--json]``: list every structural and semantic problem of a model.

The findings are our own rules (qonnx_tools.check) plus everything
``onnx.checker.check_model(full_check=True)`` reports, one error line each, with messages
starting ``onnx.checker:`` (a missing opset import for a custom domain, unsorted nodes,
schema violations of standard ops, shape-inference conflicts...).

Exit 0 when there is no error (warnings are listed), 1 when there are errors, 2 when
the file is no readable ONNX model at all. ``--json`` prints a list of
``{severity, node, op, message}`` objects.
"""

from __future__ import annotations

import argparse
import json

from qonnx_tools.check import ERROR, check_file
from qonnx_tools.errors import CheckFailedError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "check", help="validate a model: onnx.checker (full check), structure, types, QONNX attributes and parameters"
    )
    p.add_argument("model", help="ONNX/QONNX model file")
    p.add_argument("--json", action="store_true", help="print the findings as a JSON list")
    p.add_argument(
        "--max-tensor-bytes",
        type=_positive_int,
        default=None,
        metavar="N",
        help="largest tensor a file may declare (default 4 GiB or $QONNX_TOOLS_MAX_TENSOR_BYTES)",
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    findings = check_file(args.model, max_tensor_bytes=args.max_tensor_bytes)
    n_errors = sum(1 for f in findings if f.severity == ERROR)
    n_warnings = len(findings) - n_errors
    if args.json:
        print(json.dumps([f.to_dict() for f in findings], indent=2))
    else:
        for f in findings:
            print(f"{f.severity:<8} {f.describe()}")
        print(f"{args.model}: {_count(n_errors, 'error')}, {_count(n_warnings, 'warning')}")
    if n_errors:
        raise CheckFailedError(f"{args.model}: {_count(n_errors, 'error')} found")
    return 0


def _count(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive number of bytes, got {text!r}")
    return value

