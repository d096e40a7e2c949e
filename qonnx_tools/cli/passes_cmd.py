"""``qonnx passes``: list the registered passes with their options and one-line docs."""

from __future__ import annotations

import argparse
import dataclasses
import json

from qonnx_tools.passes import registered_passes


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("passes", help="list registered passes")
    p.add_argument("--json", action="store_true", help="print the passes (name, summary, options with defaults) as JSON")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    listing = []
    for name, cls in registered_passes().items():
        options = {}
        if dataclasses.is_dataclass(cls):
            options = {f.name: f.default for f in dataclasses.fields(cls) if f.default is not dataclasses.MISSING}
        summary = cls.summary or ((cls.__doc__ or "").strip().splitlines() or [""])[0]
        listing.append({"name": name, "summary": summary, "options": options})
    if args.json:
        print(json.dumps(listing, indent=2, default=repr))
        return 0
    for item in listing:
        print(f"{item['name']:<34} {item['summary']}")
        if item["options"]:
            print(f"{'':<34}   options: {' '.join(f'{k}={v!r}' for k, v in item['options'].items())}")
    return 0
