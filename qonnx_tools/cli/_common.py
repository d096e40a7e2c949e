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


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive number")
    return value


def add_input_options(p: argparse.ArgumentParser, *, random_by_default: bool = False) -> None:
    """--inputs/--input/--random (exclusive sources), --seed and --batch (with --random only).

    ``random_by_default``: the command may run without any source (a transform's --verify):
    it then uses --random's inputs, and says so on stderr."""
    p.add_argument("--input", action="append", default=[], metavar="NAME=FILE.npy", help="one input array (repeatable)")
    p.add_argument("--inputs", metavar="FILE.npz",
                   help="input arrays keyed by graph input name: every runtime input, nothing else "
                        "(a corpus io.npz with 'input'/'output' keys is read too)")
    p.add_argument("--random", action="store_true",
                   help="seeded random inputs following declared shapes/datatypes"
                        + (" (the default when no input is given)" if random_by_default else ""))
    p.add_argument("--seed", type=int, default=None, help="seed for --random (default 0)")
    p.add_argument("--batch", type=positive_int, default=None,
                   help="with --random: size of a symbolic first dimension (default 1)")
    p.set_defaults(random_by_default=random_by_default)


def gather_inputs(args: argparse.Namespace, model: ir.Model) -> dict[str, np.ndarray]:
    """Inputs from --inputs/--input or --random; BadInputError naming the file on any mismatch.

    Random inputs are used only when asked (or, for a transform's --verify, when no input is
    given), and are announced on stderr with their seed, shapes and ranges."""
    given = bool(args.inputs or args.input)
    if given and args.random:
        raise BadInputError("--random cannot be combined with --inputs/--input")
    if not args.random and (args.seed is not None or args.batch is not None):
        raise BadInputError("--seed and --batch apply to --random inputs only")
    if not given and not args.random and not getattr(args, "random_by_default", False):
        raise BadInputError("no inputs: give --inputs FILE.npz, --input NAME=FILE.npy or --random")
    if not given:
        return announced_random_inputs(model, seed=args.seed or 0, batch=args.batch)
    feeds: dict[str, np.ndarray] = {}
    if args.inputs:
        feeds.update(_load_npz(Path(args.inputs), model))
    for item in args.input:
        name, sep, file = item.partition("=")
        if not sep or not name or not file:
            raise BadInputError(f"--input {item!r}: expected NAME=FILE.npy")
        feeds[name] = _load_npy(Path(file))
    _require_exact_names(feeds, model, "--inputs/--input")
    return feeds


def announced_random_inputs(model: ir.Model, *, seed: int = 0, batch: int | None = None) -> dict[str, np.ndarray]:
    """``random_inputs`` plus one stderr line per input: name, dtype, shape, range, seed."""
    import sys

    fixed = [v for v in model.graph.inputs if v.name not in model.graph.initializers and v.shape is not None
             and len(v.shape) and isinstance(v.shape[0], int)]
    if batch is not None and fixed and fixed[0].shape[0] != batch:
        raise BadInputError(
            f"--batch {batch}: the model's input {fixed[0].name!r} has a fixed batch of {fixed[0].shape[0]}; "
            f"rebind it first with `qonnx cleanup MODEL -o OUT --fix-batch {batch}`"
        )
    feeds = random_inputs(model, seed=seed, batch=batch)
    for name, array in feeds.items():
        span = f"[{array.min():.4g}, {array.max():.4g}]" if array.size else "[]"
        print(f"inputs: random (seed {seed}): {name} {array.dtype} {tuple(array.shape)} in {span}", file=sys.stderr)
    return feeds


def _require_exact_names(feeds: Mapping[str, np.ndarray], model: ir.Model, source: str) -> None:
    wanted = {v.name for v in model.graph.inputs if v.name not in model.graph.initializers}
    missing, unknown = sorted(wanted - set(feeds)), sorted(set(feeds) - wanted)
    if missing or unknown:
        parts = ([f"missing {', '.join(map(repr, missing))}"] if missing else []) + (
            [f"unknown {', '.join(map(repr, unknown))}"] if unknown else [])
        raise BadInputError(f"{source}: {'; '.join(parts)} (the model's inputs: {', '.join(sorted(wanted))})")


def _load_npz(path: Path, model: ir.Model) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except FileNotFoundError:
        raise BadInputError(f"{path}: no such file") from None
    except Exception as exc:
        raise BadInputError(f"{path}: not a readable .npz file ({exc})") from exc
    names = [v.name for v in model.graph.inputs if v.name not in model.graph.initializers]
    if len(names) == 1 and set(arrays) in ({"input"}, {"input", "output"}):
        # the corpus reference convention (io.npz): the single data input stored as 'input'
        return {names[0]: arrays["input"]}
    return arrays


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
