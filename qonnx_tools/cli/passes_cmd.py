"""``qonnx passes``: list the registered passes with their options and one-line docs."""

from __future__ import annotations

import argparse
import dataclasses

from qonnx_tools.passes import registered_passes


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("passes", help="list registered passes")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    for name, cls in registered_passes().items():
        options = ""
        if dataclasses.is_dataclass(cls):
            options = " ".join(f"{f.name}={f.default!r}" for f in dataclasses.fields(cls) if f.default is not dataclasses.MISSING)
        summary = cls.summary or ((cls.__doc__ or "").strip().splitlines() or [""])[0]
        print(f"{name:<34} {summary}")
        if options:
            print(f"{'':<34}   options: {options}")
    return 0
