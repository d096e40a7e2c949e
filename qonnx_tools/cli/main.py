"""``qonnx`` entry point: sub-command dispatch and the one place errors become exit codes.

Exit codes: 0 success, 1 a check or verification failed, 2 bad input (unreadable
model, illegal attribute, wrong arguments), 3 an internal error (a bug: please report).
Errors print as one line ``error: ...``; ``--debug`` adds the traceback.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from typing import Sequence

from qonnx_tools import __version__
from qonnx_tools.cli import (
    check_cmd,
    cleanup_cmd,
    convert_cmd,
    cost_cmd,
    exec_cmd,
    info_cmd,
    passes_cmd,
    prepare_cmd,
    streamline_cmd,
    transform_cmd,
    verify_cmd,
    zoo_cmd,
)
from qonnx_tools.errors import BadInputError, CheckFailedError, QonnxToolsError

EXIT_OK, EXIT_FAILED_CHECK, EXIT_BAD_INPUT, EXIT_INTERNAL = 0, 1, 2, 3

_COMMANDS = (
    info_cmd,
    check_cmd,
    exec_cmd,
    verify_cmd,
    cleanup_cmd,
    passes_cmd,
    convert_cmd,
    streamline_cmd,
    cost_cmd,
    zoo_cmd,
    transform_cmd,
    prepare_cmd,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="qonnx", description="Tools for quantized ONNX (QONNX) models.")
    parser.add_argument("--version", action="version", version=f"qonnx-tools {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for module in _COMMANDS:
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args) or EXIT_OK)
    except CheckFailedError as exc:
        return _report(exc, args.debug, EXIT_FAILED_CHECK)
    except (BadInputError, QonnxToolsError) as exc:
        return _report(exc, args.debug, EXIT_BAD_INPUT)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug in qonnx-tools: still one line unless --debug
        return _report(exc, args.debug, EXIT_INTERNAL, prefix="internal error: ")


def _report(exc: BaseException, debug: bool, code: int, prefix: str = "") -> int:
    if debug:
        traceback.print_exc()
    message = " ".join(str(exc).split()) or type(exc).__name__
    print(f"error: {prefix}{message}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
