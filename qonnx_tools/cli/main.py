"""``qonnx`` entry point: sub-command dispatch and the one place errors become exit codes.

Exit codes: 0 success, 1 a check or verification failed, 2 bad input (unreadable
model, illegal attribute, wrong arguments), 3 an internal error (a bug: please report).
Errors print as one line ``error: ...`` (a model that breaks QONNX's rules: one such line per
broken rule); ``--debug`` adds the traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
import warnings
from typing import Sequence

from qonnx_tools import __version__
from qonnx_tools.cli import (
    check_cmd,
    cleanup_cmd,
    convert_cmd,
    cost_cmd,
    eval_cmd,
    exec_cmd,
    info_cmd,
    passes_cmd,
    prepare_cmd,
    quantize_cmd,
    streamline_cmd,
    transform_cmd,
    verify_cmd,
    zoo_cmd,
)
from qonnx_tools.errors import BadInputError, CheckFailedError, IllegalModelError, QonnxToolsError

EXIT_OK, EXIT_FAILED_CHECK, EXIT_BAD_INPUT, EXIT_INTERNAL = 0, 1, 2, 3

_COMMANDS = (
    info_cmd,
    check_cmd,
    exec_cmd,
    eval_cmd,
    verify_cmd,
    cleanup_cmd,
    passes_cmd,
    convert_cmd,
    streamline_cmd,
    cost_cmd,
    zoo_cmd,
    transform_cmd,
    prepare_cmd,
    quantize_cmd,
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
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv  # accepted anywhere on the line, not only before the command
    args = build_parser().parse_args([a for a in argv if a != "--debug"])
    args.debug = debug
    model = getattr(args, "model", None)
    with warnings.catch_warnings(record=not args.debug) as caught:
        if not args.debug:
            warnings.simplefilter("always", RuntimeWarning)
        try:
            code = int(args.run(args) or EXIT_OK)
        except CheckFailedError as exc:
            code = _report(exc, args.debug, EXIT_FAILED_CHECK, model)
        except (BadInputError, QonnxToolsError) as exc:
            code = _report(exc, args.debug, EXIT_BAD_INPUT, model)
        except KeyboardInterrupt:
            print("error: interrupted", file=sys.stderr)
            code = 130
        except BrokenPipeError:  # e.g. `qonnx passes | head -1`: the reader has gone, nothing to report
            _silence_stdout()
            code = EXIT_OK
        except Exception as exc:  # a bug in qonnx-tools: still one line unless --debug
            code = _report(exc, args.debug, EXIT_INTERNAL, model, prefix="internal error: ")
    _summarise_warnings(caught or [])
    return code


def _silence_stdout() -> None:
    """Point stdout at /dev/null so that Python's final flush does not fail on the closed pipe."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def _report(exc: BaseException, debug: bool, code: int, model: str | None, prefix: str = "") -> int:
    """One line on stderr; the model file is named unless the message already does."""
    if debug:
        traceback.print_exc()
    if isinstance(exc, IllegalModelError):  # one line per broken rule, each naming file and node
        for problem in exc.problems:
            print(f"error: {exc.path}: {' '.join(problem.split())}", file=sys.stderr)
        return code
    message = " ".join(str(exc).split()) or type(exc).__name__
    if model and str(model) not in message:
        message = f"{model}: {message}"
    print(f"error: {prefix}{message}", file=sys.stderr)
    return code


def _summarise_warnings(caught: list) -> None:
    """Each warning as one ``warning: ...`` line (repeats once); NumPy's numeric warnings (overflow,
    invalid value) summarised in one line instead of one per occurrence."""
    numeric = [w for w in caught if issubclass(w.category, RuntimeWarning)]
    seen: set[str] = set()
    for w in caught:  # our own warnings: one line each, without Python's source excerpt
        text = " ".join(str(w.message).split())
        if w not in numeric and text not in seen:
            seen.add(text)
            print(f"warning: {text}", file=sys.stderr)
    if numeric:
        kinds = sorted({str(w.message).split(" encountered")[0] for w in numeric})
        print(f"warning: {len(numeric)} numeric warning(s) while running ({'; '.join(kinds)}); "
              "--debug shows where", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
