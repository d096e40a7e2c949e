"""Argument helpers shared by sub-commands: input arrays and safe output paths."""

from __future__ import annotations

import argparse
import io
from pathlib import Path
from typing import Mapping

import numpy as np

from qonnx_tools._ir import ir
from qonnx_tools.atomic import write_bytes_atomic
from qonnx_tools.errors import BadInputError
from qonnx_tools.runtime import random_inputs


def add_input_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--input", action="append", default=[], metavar="NAME=FILE.npy", help="one input array (repeatable)")
    p.add_argument("--inputs", metavar="FILE.npz", help="input arrays keyed by graph input name")
    p.add_argument("--random", action="store_true", help="seeded random inputs following declared shapes/datatypes")
    p.add_argument("--seed", type=int, default=0, help="seed for --random (default 0)")
    p.add_argument("--batch", type=int, default=None, help="batch size for --random (symbolic/first dimension)")


def gather_inputs(args: argparse.Namespace, model: ir.Model) -> dict[str, np.ndarray]:
    """Inputs from --inputs/--input, else --random; BadInputError naming the file on problems."""
    feeds: dict[str, np.ndarray] = {}
    if args.inputs:
        feeds.update(_load_npz(Path(args.inputs), model))
    for item in args.input:
        name, sep, file = item.partition("=")
        if not sep or not name or not file:
            raise BadInputError(f"--input {item!r}: expected NAME=FILE.npy")
        feeds[name] = _load_npy(Path(file))
    if getattr(args, "random", False) or not feeds:
        generated = random_inputs(model, seed=args.seed, batch=args.batch)
        for name, array in generated.items():
            feeds.setdefault(name, array)
    return feeds


def _load_npz(path: Path, model: ir.Model) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except FileNotFoundError:
        raise BadInputError(f"{path}: no such file") from None
    except Exception as exc:
        raise BadInputError(f"{path}: not a readable .npz file ({exc})") from exc
    names = [v.name for v in model.graph.inputs if v.name not in model.graph.initializers]
    if len(names) == 1 and names[0] not in arrays and "input" in arrays:
        # corpus convention (io.npz): the single data input is stored as 'input'
        return {names[0]: arrays["input"]}
    return {k: v for k, v in arrays.items() if k in {v.name for v in model.graph.inputs}}


def _load_npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise BadInputError(f"{path}: no such file") from None
    except Exception as exc:
        raise BadInputError(f"{path}: not a readable .npy file ({exc})") from exc


def check_output_path(output: str | Path, *, inputs: tuple[str | Path, ...] = (), force: bool = False) -> Path:
    """Refuse to overwrite an input file, or an existing output without --force."""
    out = Path(output)
    for given in inputs:
        if Path(given).exists() and out.exists() and out.resolve() == Path(given).resolve():
            raise BadInputError(f"{out}: refusing to overwrite the input file (use --in-place to allow)")
    if out.exists() and not force:
        raise BadInputError(f"{out}: already exists (use --force to overwrite)")
    if not out.parent.is_dir():
        raise BadInputError(f"{out}: directory {out.parent} does not exist")
    return out


def save_npz(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    """Write arrays to ``path`` as .npz, atomically."""
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    write_bytes_atomic(path, buffer.getvalue())
