"""Argument helpers shared by sub-commands: input arrays, safe output paths, verification options."""

from __future__ import annotations

import argparse
import io
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from qonnx_tools._ir import ir
from qonnx_tools.atomic import write_bytes_atomic
from qonnx_tools.errors import BadInputError
from qonnx_tools.model_io import data_name_candidates, external_data_files
from qonnx_tools.runtime import random_inputs
from qonnx_tools.verify import ATOL, MAX_OFF_FRACTION, MAX_STEPS, RTOL, Tolerance


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


def add_output_options(p: argparse.ArgumentParser, *, required: bool = True, in_place: bool = True,
                       positional: bool = False, help: str = "output file") -> None:
    """``-o/--output`` (or a positional OUTPUT), ``--force`` and, for model writers, ``--in-place``."""
    if positional:
        p.add_argument("output", help=help)
    else:
        p.add_argument("-o", "--output", required=required, help=help)
    p.add_argument("--force", action="store_true", help="overwrite an existing output file (never the input)")
    if in_place:
        p.add_argument("--in-place", action="store_true", help="allow the output to be the input file")


def check_output_path(output: str | Path, *, inputs: tuple[str | Path, ...] = (), force: bool = False,
                      in_place: bool | None = False) -> Path:
    """The output path, once it is safe to write; BadInputError otherwise.

    The input is overwritten only with ``in_place``; any other existing file only with
    ``force``; an input's external data file never (the input would lose its weights).
    ``in_place=None``: the command has no ``--in-place`` (the input is never written).
    """
    out = Path(output)
    if not out.parent.is_dir():
        raise BadInputError(f"{out}: directory {out.parent} does not exist")
    if out.is_dir():
        raise BadInputError(f"{out}: is a directory")
    for given in map(Path, inputs):
        if out.exists() and given.exists() and out.samefile(given):
            if not in_place:
                hint = "" if in_place is None else " (use --in-place to allow)"
                raise BadInputError(f"{out}: refusing to overwrite the input file{hint}")
            return out
        _refuse_input_data_files(out, given)
    if out.exists() and not force:
        raise BadInputError(f"{out}: already exists (use --force to overwrite)")
    return out


def _refuse_input_data_files(out: Path, given: Path) -> None:
    # Only parse the input again when a clash is possible at all (the usual case costs a stat).
    ours = [out, *(out.parent / name for name in data_name_candidates(out))]
    if not given.is_file() or not any(p.exists() for p in ours):
        return
    used = external_data_files(given)
    if out.resolve() in used:
        raise BadInputError(f"{out}: is the external data file of the input {given}; refusing to overwrite it")
    for data in ours[1:]:
        if data.resolve() in used:
            raise BadInputError(
                f"{out}: saving it would replace {data.name}, the external data of the input {given}; "
                "choose another output name"
            )


def save_npz(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    """Write arrays to ``path`` as .npz, atomically."""
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    write_bytes_atomic(path, buffer.getvalue())


def op_table(
    before: Mapping[str, int],
    after: Mapping[str, int],
    *,
    rows: Sequence[tuple[str, int, int]] = (),
    indent: str = "",
    width: int = 48,
) -> list[str]:
    """Lines of an op-count table (before / after a command), then any extra ``rows`` (label, before, after)."""
    lines = [f"{indent}{'op':<{width}} {'before':>7} {'after':>7}"]
    for op in sorted(set(before) | set(after)):
        lines.append(f"{indent}{op:<{width}} {before.get(op, 0):>7} {after.get(op, 0):>7}")
    lines += [f"{indent}{label:<{width}} {b:>7} {a:>7}" for label, b, a in rows]
    return lines


_TOLERANCE_FLAGS = ("atol", "rtol", "max_steps", "max_off_fraction")


def add_tolerance_options(p: argparse.ArgumentParser) -> None:
    """``--atol/--rtol/--max-steps/--max-off-fraction``: ``qonnx_tools.verify``'s rule, its defaults everywhere."""
    g = p.add_argument_group("verification tolerance (agree when exact, within atol/rtol, or within max-steps)")
    g.add_argument("--atol", type=float, default=None, metavar="X",
                   help=f"float outputs: accept |a-b| <= atol + rtol*|a| (default {ATOL:g})")
    g.add_argument("--rtol", type=float, default=None, metavar="X", help=f"see --atol (default {RTOL:g})")
    g.add_argument("--max-steps", type=float, default=None, metavar="K",
                   help="quantized outputs: accept differences of up to K quantization steps on at most "
                        f"--max-off-fraction of the elements (default {MAX_STEPS:g}: none)")
    g.add_argument("--max-off-fraction", type=float, default=None, metavar="F",
                   help="with --max-steps: largest share of elements allowed off "
                        f"(default {MAX_OFF_FRACTION:g}, i.e. {100 * MAX_OFF_FRACTION:g} %%)")


def add_verify_options(p: argparse.ArgumentParser, *, help: str) -> None:
    """``--verify`` of a command that transforms a model, with the tolerance options."""
    p.add_argument("--verify", action="store_true", help=help)
    add_tolerance_options(p)


def tolerance_from_args(args: argparse.Namespace, *, needs_verify: bool = False) -> Tolerance:
    """The Tolerance of the given flags (library defaults for the others); BadInputError for bad values,
    or (``needs_verify``) for tolerance flags given without ``--verify``."""
    given = {k: getattr(args, k) for k in _TOLERANCE_FLAGS if getattr(args, k, None) is not None}
    if needs_verify and given and not getattr(args, "verify", False):
        flags = ", ".join("--" + k.replace("_", "-") for k in given)
        raise BadInputError(f"{flags}: only meaningful with --verify")
    return Tolerance(**given)
