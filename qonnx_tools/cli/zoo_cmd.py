"""``qonnx zoo validate [DIR ...] [--flows LIST] [--json] [--jobs N]``: validate model zoos.

Each DIR is a folder with a manifest.toml (or the manifest itself), or a folder of
.onnx files validated with default flows. ``--flows`` replaces those lists: every
flow it names runs on every model (a manifest says what must pass, --flows asks for
these flows explicitly); a flow that cannot run on a model fails with its reason,
none is dropped. Prints a model x flow table and a summary line; exit 1 when any
flow fails, 2 for unknown flow names. The work is in qonnx_tools.zoo.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from qonnx_tools import zoo
from qonnx_tools.errors import BadInputError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("zoo", help="validate a model zoo (manifest or folder of models)")
    actions = p.add_subparsers(dest="zoo_command", metavar="ACTION")
    actions.required = True
    v = actions.add_parser("validate", help="check every model and run the flows it must pass")
    v.add_argument("dirs", nargs="*", default=["models"], metavar="DIR", help="zoo folders (default: models)")
    v.add_argument(
        "--flows",
        help=f"run exactly these flows on every model, comma-separated ({','.join(zoo.FLOWS)}); replaces the "
        "manifest's flows and the folder defaults; a flow that cannot run on a model fails with its reason",
    )
    v.add_argument("--json", action="store_true", help="print results as JSON")
    v.add_argument("--jobs", type=int, default=1, help="validate models in N processes (default 1)")
    v.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.jobs < 1:
        raise BadInputError(f"--jobs {args.jobs}: must be at least 1")
    flows = zoo.parse_flows(args.flows)
    entries = [entry for directory in args.dirs for entry in zoo.discover(directory)]
    start = time.perf_counter()
    results = zoo.validate(entries, flows=flows, jobs=args.jobs, progress=zoo.progress_printer(sys.stderr))
    elapsed = time.perf_counter() - start
    if args.json:
        print(json.dumps({"ok": all(r.ok for r in results), "seconds": elapsed,
                          "models": [r.to_dict() for r in results]}, indent=2))
    else:
        print(zoo.format_table(results, elapsed))
    return 0 if all(r.ok for r in results) else 1
