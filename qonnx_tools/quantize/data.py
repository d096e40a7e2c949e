"""Data sets on disk as batches of model inputs, for calibration (``quantize``) and evaluation (``evaluate``).

A source is

- an ``.npz``: one array per model input, keyed by the input's name (other keys, such as labels, are
  ignored); a one-input model also takes a file holding a single array, or an ``input`` key;
- a folder of ``.npy`` files (one-input models; each file one or more samples stacked on axis 0) or of
  ``.npz`` files (as above), read one file at a time in name order.

``Batches`` re-cuts the samples into batches of ``batch_size`` along axis 0, in order. ``.npy`` files
are memory-mapped, so a folder of them streams with one batch in memory; an ``.npz`` member is read
whole when its file's turn comes (NumPy cannot map compressed members), so large sets belong in a
folder. Counting the samples (for the progress bar) reads only the array headers.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from qonnx_tools._ir import ir
from qonnx_tools.errors import BadInputError

DEFAULT_BATCH = 32


def data_input_names(model: ir.Model) -> list[str]:
    """The inputs a caller feeds (graph inputs that are not initializers)."""
    return [v.name for v in model.graph.inputs if v.name not in model.graph.initializers]


def default_batch_size(model: ir.Model) -> int:
    """The model's fixed batch (first dimension of its first input) when it has one, else 32."""
    names = data_input_names(model)
    value = next((v for v in model.graph.inputs if names and v.name == names[0]), None)
    if value is not None and value.shape is not None and len(value.shape) and isinstance(value.shape[0], int):
        return int(value.shape[0])
    return DEFAULT_BATCH


def _choose_keys(keys: list[str], names: list[str], where: str) -> dict[str, str]:
    """Input name -> key of the file holding it."""
    if all(name in keys for name in names):
        return {name: name for name in names}
    if len(names) == 1:
        if "input" in keys:
            return {names[0]: "input"}
        if len(keys) == 1:
            return {names[0]: keys[0]}
    raise BadInputError(f"{where}: holds {sorted(keys)}; the model's inputs are {names} "
                        f"(one array per input, keyed by its name)")


def _npz_shapes(path: Path, names: list[str]) -> dict[str, tuple[int, ...]]:
    """The shapes of the chosen arrays of an .npz, from the .npy headers (nothing decompressed)."""
    fmt = np.lib.format
    with zipfile.ZipFile(path) as archive:
        keys = [n[:-4] for n in archive.namelist() if n.endswith(".npy")]
        shapes = {}
        for name, key in _choose_keys(keys, names, str(path)).items():
            with archive.open(key + ".npy") as f:
                version = fmt.read_magic(f)
                reader = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
                shapes[name] = reader(f)[0]
    return shapes


class Batches:
    """The samples of a data source in batches of ``batch_size`` (the last may be smaller), in order."""

    def __init__(self, source: str | Path, model: ir.Model, batch_size: int | None = None,
                 limit: int | None = None):
        self.path = Path(source)
        self.names = data_input_names(model)
        self.batch_size = batch_size or default_batch_size(model)
        self.limit = limit
        if self.batch_size < 1:
            raise BadInputError(f"batch size {self.batch_size}: must be at least 1")
        if self.path.is_dir():
            self.files = sorted(p for p in self.path.iterdir() if p.suffix in (".npy", ".npz"))
            if not self.files:
                raise BadInputError(f"{self.path}: no .npy or .npz files")
            if any(p.suffix == ".npy" for p in self.files) and len(self.names) != 1:
                raise BadInputError(f"{self.path}: .npy files feed one-input models; the model has inputs {self.names}")
        elif self.path.is_file():
            if self.path.suffix != ".npz":
                raise BadInputError(f"{self.path}: expected an .npz file or a folder of .npy/.npz files")
            self.files = [self.path]
        else:
            raise BadInputError(f"{self.path}: no such file or folder")
        self.samples = self._count()

    def _read(self, path: Path) -> dict[str, np.ndarray]:
        try:
            if path.suffix == ".npy":
                arrays = {self.names[0]: np.load(path, mmap_mode="r", allow_pickle=False)}
            else:
                with np.load(path, allow_pickle=False) as data:
                    arrays = {name: data[key] for name, key in _choose_keys(list(data.files), self.names, str(path)).items()}
        except (OSError, ValueError, zipfile.BadZipFile) as exc:
            raise BadInputError(f"{path}: not a readable array file ({exc})") from None
        self._first_axis(path, {k: np.shape(a) for k, a in arrays.items()})
        return arrays

    @staticmethod
    def _first_axis(path: Path, shapes: dict[str, tuple[int, ...]]) -> int:
        sizes = {shape[0] if shape else None for shape in shapes.values()}
        if len(sizes) != 1 or None in sizes:
            raise BadInputError(f"{path}: the inputs must share a first (sample) axis; got shapes {shapes}")
        return int(next(iter(sizes)))

    def _count(self) -> int:
        total = 0
        for path in self.files:
            try:
                if path.suffix == ".npy":
                    shapes = {self.names[0]: np.load(path, mmap_mode="r", allow_pickle=False).shape}
                else:
                    shapes = _npz_shapes(path, self.names)
            except (OSError, ValueError, zipfile.BadZipFile) as exc:
                raise BadInputError(f"{path}: not a readable array file ({exc})") from None
            total += self._first_axis(path, shapes)
        return total if self.limit is None else min(total, self.limit)

    def __len__(self) -> int:
        return -(-self.samples // self.batch_size)

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        pending: list[dict[str, np.ndarray]] = []
        have = given = 0
        for path in self.files:
            arrays = self._read(path)
            n = int(np.shape(next(iter(arrays.values())))[0])
            start = 0
            while start < n and given + have < self.samples:
                take = min(n - start, self.batch_size - have, self.samples - given - have)
                pending.append({k: np.asarray(a[start:start + take]) for k, a in arrays.items()})
                have += take
                start += take
                if have == self.batch_size:
                    yield _join(pending)
                    given += have
                    pending, have = [], 0
        if have:
            yield _join(pending)


def _join(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    if len(parts) == 1:
        return parts[0]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def load_labels(source: str | Path, data: str | Path | None = None) -> np.ndarray:
    """Integer labels: an ``.npy`` file, or a key of the data ``.npz`` (``labels``/``y``/``label``...)
    when ``source`` is not a file."""
    path = Path(source)
    if path.suffix == ".npy" and path.is_file():
        labels = np.load(path, allow_pickle=False)
    elif data is not None and Path(data).is_file():
        with np.load(data, allow_pickle=False) as arrays:
            if str(source) not in arrays.files:
                raise BadInputError(f"--labels {source}: neither an .npy file nor a key of {data} ({sorted(arrays.files)})")
            labels = arrays[str(source)]
    else:
        raise BadInputError(f"--labels {source}: no such .npy file")
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise BadInputError(f"--labels {source}: expected a 1-D integer array, got {labels.dtype} {labels.shape}")
    return labels
