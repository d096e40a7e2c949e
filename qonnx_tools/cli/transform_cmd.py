"""``qonnx transform SCRIPT IN OUT``: run a user transform script on a model.

Convention (see transforms/*.py): the script defines either

* ``transform(model) -> model | None`` -- receives the loaded ``onnx_ir`` model
  (``qonnx_tools.model_io.load``), changes it in place or returns a new one; the
  command then saves it to OUT (atomically; OUT must not exist unless --force); or
* ``main(in_path, out_path) -> int | None`` -- does its own loading and saving;
  a non-zero return value is the exit code.

When both exist, ``transform`` is used. The script is imported from its path
(it runs with the same privileges as any Python code you execute).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path

from qonnx_tools.cli._common import add_output_options, check_output_path
from qonnx_tools.errors import BadInputError, QonnxToolsError
from qonnx_tools.info import op_counts
from qonnx_tools.model_io import load, save


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("transform", help="run a transform script (transform(model) or main(in, out)) on a model")
    p.add_argument("script", help="a Python file defining transform(model) or main(in_path, out_path)")
    p.add_argument("model", help="ONNX/QONNX model file the script transforms")
    add_output_options(p, positional=True)
    p.add_argument("--json", action="store_true",
                   help="print what was done (script, function, model, output, ops before/after) as JSON "
                        "(a main() script's own printing comes first)")
    p.set_defaults(run=run)


def load_script(path: str | Path):
    """Import a transform script from its file path; BadInputError when it cannot be used."""
    path = Path(path)
    if not path.is_file():
        raise BadInputError(f"{path}: no such script")
    name = f"qonnx_transform_{abs(hash(str(path.resolve())))}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise BadInputError(f"{path}: not a Python script")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise BadInputError(f"{path}: could not import ({type(exc).__name__}: {exc})") from exc
    if not callable(getattr(module, "transform", None)) and not callable(getattr(module, "main", None)):
        raise BadInputError(f"{path}: defines neither transform(model) nor main(in_path, out_path)")
    return module


def run(args: argparse.Namespace) -> int:
    module = load_script(args.script)
    out = check_output_path(args.output, inputs=(args.model,), force=args.force, in_place=args.in_place)
    model = load(args.model, legal_qonnx=True)  # an illegal model is refused before the script sees it
    report = {"script": str(args.script), "model": str(args.model), "output": str(out), "ops_before": op_counts(model)}
    if callable(getattr(module, "transform", None)):
        result = _call_script(args.script, "transform", module.transform, model)
        model = result if result is not None else model
        save(model, out)
        report.update(function="transform", ops_after=op_counts(model), exit_code=0)
        code = 0
    else:
        del model  # main() loads and saves the file itself
        code = int(_call_script(args.script, "main", module.main, str(args.model), str(out)) or 0)
        report.update(function="main", exit_code=code,
                      ops_after=op_counts(load(out)) if code == 0 and out.is_file() else None)
    if args.json:
        print(json.dumps(report, indent=2))
    elif report["function"] == "transform":
        print(f"{args.model} -> {out} ({Path(args.script).name})")
    return code


def _call_script(script: str, what: str, fn, *call_args):
    """Run the user's function; an exception it raises is the script's mistake (exit 2), ours are passed on."""
    try:
        return fn(*call_args)
    except QonnxToolsError:
        raise  # a library error with its own exit code (bad model, failed check ...)
    except Exception as exc:
        raise BadInputError(f"{script}: {what}() raised {type(exc).__name__}: {exc}") from exc
