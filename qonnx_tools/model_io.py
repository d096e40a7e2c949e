"""Loading and saving models: validation and alias normalisation on load, atomic writes on save.

``load`` returns an ``onnx_ir`` Model whose QONNX/FINN/Brevitas domain spellings
are rewritten to the canonical ones (qonnx_tools.domains). Large initializers
stored as external data stay on disk until used (onnx_ir's lazy external tensors).

Before anything is built, the file is read and validated by qonnx_tools.validate
(``read_proto``, ``validate_proto``): a broken or hostile file (bad header, oversized
tensors, external data outside the model's directory or short, cycles, values produced
twice, inputs nobody produces...) is refused with one ModelLoadError line naming the
file and the node or tensor, before any declared tensor is allocated or external data read.

``save`` never leaves a partial file: it writes a temporary file in the target
directory and renames it over the target (an atomic step on POSIX and Windows).
With external data, the data file is written under a temporary name too and
renamed first, to a name the existing model file does not use; the model's rename
is the one commit point.
"""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from collections import Counter
from pathlib import Path
from typing import Iterator

import onnx

from qonnx_tools._ir import ir, subgraphs
from qonnx_tools.atomic import atomic_target, write_bytes_atomic
from qonnx_tools.domains import QONNX, STANDARD, canonical_domain
from qonnx_tools.errors import IllegalModelError, ModelLoadError, ModelSaveError, first_line
from qonnx_tools.validate import DEFAULT_QONNX_OPSET, ERROR, PathLike, read_proto, validate_proto

#: Protobuf messages cannot exceed 2 GiB; above this many initializer bytes, save externally.
EXTERNAL_DATA_THRESHOLD_BYTES = 1_800_000_000


def load(
    path: PathLike, *, normalise: bool = True, max_tensor_bytes: int | None = None, legal_qonnx: bool = False
) -> ir.Model:
    """Read an ONNX model file into the IR; with ``normalise``, canonicalise operator domains.

    The file is validated before anything is built from it (see ``validate.validate_proto``):
    a hostile or broken file raises ModelLoadError naming the file and the tensor or
    node, without allocating declared tensors or reading external data.
    ``max_tensor_bytes`` bounds every declared tensor (default: validate.max_tensor_bytes_default()).
    ``legal_qonnx``: also apply ``qonnx check``'s rules for QONNX nodes (what every command that
    transforms a model does first): IllegalModelError listing each broken rule, and a warning
    naming the nodes of domains nobody here knows (they pass through unchanged).
    """
    path = Path(path)
    proto = read_proto(path)
    for finding in validate_proto(proto, path, max_tensor_bytes=max_tensor_bytes):
        if finding.severity == ERROR:
            raise ModelLoadError(f"{path}: {finding.describe()}")
    if legal_qonnx:
        _require_legal_qonnx(proto, path, max_tensor_bytes)
    model = _deserialize(proto, path)
    if normalise:
        normalise_domains(model)
    return model


class UnknownOpWarning(UserWarning):
    """A transformed model holds nodes of a domain (or QONNX ops) this package does not know."""


def _require_legal_qonnx(proto: onnx.ModelProto, path: Path, max_tensor_bytes: int | None) -> None:
    from qonnx_tools.check import PASSES_THROUGH, qonnx_findings  # check reads files through this module

    findings = qonnx_findings(proto, path, max_tensor_bytes=max_tensor_bytes)
    problems = [f.describe() for f in findings if f.severity == ERROR]
    if problems:
        raise IllegalModelError(str(path), problems)
    passing = Counter(f.op for f in findings if PASSES_THROUGH in f.message)
    if passing:
        listed = ", ".join(f"{n} \u00d7 {op}" for op, n in sorted(passing.items()))
        warnings.warn(f"{path}: ops unknown here pass through unchanged: {listed}", UnknownOpWarning, stacklevel=3)


def _deserialize(proto: onnx.ModelProto, path: Path) -> ir.Model:
    """Build the IR from a validated proto; its external tensors resolve beside ``path``."""
    try:
        with _quiet_ir_logging():
            model = ir.serde.deserialize_model(proto)
    except Exception as exc:
        raise ModelLoadError(f"{path}: not a readable ONNX model ({_root_message(exc)})") from exc
    ir.external_data.set_base_dir(model.graph, os.path.abspath(path.parent))
    _forget_undefined_types(model.graph)
    return model


def _forget_undefined_types(graph: ir.Graph) -> None:
    """A declared element type of 0 (UNDEFINED) means "unknown": make it None, as the IR spells unknown."""
    values = list(graph.inputs) + list(graph.outputs)
    for node in ir.traversal.RecursiveGraphIterator(graph):
        values.extend(node.outputs)
        for sub in subgraphs(node):
            values.extend(list(sub.inputs) + list(sub.outputs))
    for value in values:
        if isinstance(value.type, ir.TensorType) and value.type.dtype == ir.DataType.UNDEFINED:
            value.type = None


@contextlib.contextmanager
def _quiet_ir_logging() -> Iterator[None]:
    """Silence onnx_ir's warnings while deserialising (validation reported what matters)."""
    logger = logging.getLogger("onnx_ir")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _root_message(exc: BaseException) -> str:
    """First line of the innermost cause (onnx_ir wraps errors in 'Error calling ...')."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    return f"{type(exc).__name__}: {first_line(exc)}"


def normalise_domains(model: ir.Model) -> bool:
    """Rewrite every domain alias (nodes and opset imports) to its canonical spelling.

    Returns True when anything changed. Opset imports of aliases merge into the
    canonical domain keeping the highest version; a QONNX domain that is used
    but not imported gets DEFAULT_QONNX_OPSET.
    """
    changed = False
    used: set[str] = set()
    for node in ir.traversal.RecursiveGraphIterator(model.graph):
        canonical = canonical_domain(node.domain)
        if canonical != node.domain:
            node.domain = canonical
            changed = True
        used.add(canonical)
    imports = dict(model.opset_imports)
    merged: dict[str, int] = {}
    for domain, version in imports.items():
        canonical = canonical_domain(domain)
        merged[canonical] = max(merged.get(canonical, version), version)
    if QONNX in used and QONNX not in merged:
        merged[QONNX] = DEFAULT_QONNX_OPSET
    if STANDARD in used and STANDARD not in merged:
        merged[STANDARD] = 1
    if merged != imports:
        model.opset_imports.clear()
        model.opset_imports.update(merged)
        model.graph.opset_imports.clear()
        model.graph.opset_imports.update(merged)
        changed = True
    return changed


def save(model: ir.Model, path: PathLike, *, external_data: bool | None = None) -> Path:
    """Write ``model`` to ``path`` atomically; returns the path written.

    ``external_data``: True stores initializers in ``<file name>.data`` beside the
    model; None (default) does so only when the initializers would not fit in a
    protobuf (> EXTERNAL_DATA_THRESHOLD_BYTES) or the model already holds external tensors.

    Every domain a node uses gets an opset import first (``add_missing_opset_imports``,
    which changes ``model`` in place): onnx.checker refuses a node whose domain is not imported.
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise ModelSaveError(f"{path}: directory {path.parent} does not exist")
    add_missing_opset_imports(model)
    if external_data is None:
        external_data = _needs_external_data(model)
    try:
        if external_data:
            _save_with_external_data(model, path)
        else:
            write_bytes_atomic(path, ir.to_proto(model).SerializeToString())
    except ModelSaveError:
        raise
    except Exception as exc:
        raise ModelSaveError(f"{path}: could not save model ({first_line(exc)})") from exc
    return path


def add_missing_opset_imports(model: ir.Model) -> dict[str, int]:
    """Import every domain a node uses (subgraphs and model functions included); returns what was added.

    onnx.checker and onnx shape inference refuse a node whose domain the model (or, in a
    function, the function) does not import, custom domains included. A missing import gets
    version 1, what ``load`` reads such a file at (QONNX opset 1, as old ``onnx.brevitas``
    exports mean; ai.onnx 1; channels_last has only version 1). A domain spelled
    differently from its import (an alias such as ``finn.custom_op.general``) gets the
    version of the imported spelling, under its own spelling, because onnx compares the
    strings (it equates only a node domain of ``""`` with an import of ``ai.onnx``).
    """
    added = _add_imports(model.opset_imports, (node.domain for node in ir.traversal.RecursiveGraphIterator(model.graph)))
    for function in model.functions.values():
        domains = (node.domain for node in ir.traversal.RecursiveGraphIterator(function))
        added.update(_add_imports(function.opset_imports, domains))
    return added


def _add_imports(imports: dict[str, int], used_domains) -> dict[str, int]:
    added: dict[str, int] = {}
    for domain in set(used_domains):
        if domain in imports or (domain == STANDARD and "ai.onnx" in imports):
            continue
        canonical = canonical_domain(domain)
        aliases = [v for d, v in imports.items() if canonical_domain(d) == canonical]
        version = max(aliases) if aliases else 1
        imports[domain] = added[domain] = version
    return added


def external_data_name(path: Path) -> str:
    """File name (relative to the model's directory) of a model's external data."""
    return path.name + ".data"


def data_name_candidates(path: Path) -> tuple[str, str]:
    """The two file names a save of ``path`` may give its external data."""
    # Two names used in turn: an in-place save writes the one the current file does
    # not use, so the model's rename is the single commit point (see _save_with_external_data).
    return external_data_name(path), path.name + ".2.data"


def external_data_files(path: PathLike) -> set[Path]:
    """Resolved paths of the external data files the model file at ``path`` refers to (empty if none/unreadable)."""
    path = Path(path)
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception:
        return set()
    files = set()
    for tensor in _all_external_tensors(proto):
        for entry in tensor.external_data:
            if entry.key == "location":
                files.add((path.parent / entry.value).resolve())
    return files


def _save_with_external_data(model: ir.Model, path: Path) -> None:
    """Model and data written under temporary names; the data file takes a name the
    existing model at ``path`` does not use, so an interrupt at any point leaves either
    the old model with its old data or the new model with its new data (never a mix)."""
    in_use = external_data_files(path) if path.exists() else set()
    free = [n for n in data_name_candidates(path) if (path.parent / n).resolve() not in in_use]
    if not free:
        raise ModelSaveError(f"{path}: the existing model uses both {' and '.join(data_name_candidates(path))}; save elsewhere")
    data_name = next((n for n in free if not (path.parent / n).exists()), free[0])
    data_path = path.parent / data_name
    data_placed = committed = False
    try:
        with atomic_target(path) as tmp_model:
            with atomic_target(data_path) as tmp_data:
                locations = _write_model_and_data(model, tmp_model, tmp_data, data_name)
            data_placed = True
        committed = True
    finally:
        if data_placed and not committed:
            data_path.unlink(missing_ok=True)
    _repoint_external_tensors(model, in_use, data_path, locations)
    _remove_unused_data_files(model, path, in_use - {data_path.resolve()})


def _write_model_and_data(model: ir.Model, tmp_model: Path, tmp_data: Path, data_name: str) -> dict[str, tuple[int, int]]:
    """Write both files; returns ``{initializer name: (offset, length)}`` in the data file."""
    ir.save(model, tmp_model, external_data=tmp_data.name, size_threshold_bytes=1024)
    # ir.save recorded the temporary data name; point the model at the final name.
    proto = onnx.load(str(tmp_model), load_external_data=False)
    locations = {}
    for tensor in _all_external_tensors(proto):
        fields = {entry.key: entry for entry in tensor.external_data}
        fields["location"].value = data_name
        offset = int(fields["offset"].value) if "offset" in fields else 0
        length = int(fields["length"].value) if "length" in fields else 0
        locations[tensor.name] = (offset, length)
    with open(tmp_model, "wb") as handle:
        handle.write(proto.SerializeToString())
        handle.flush()
        os.fsync(handle.fileno())
    if not tmp_data.exists():  # nothing was large enough to go external
        tmp_data.touch()
    with open(tmp_data, "rb+") as handle:
        os.fsync(handle.fileno())
    return locations


def _repoint_external_tensors(model: ir.Model, old_files: set[Path], data_path: Path,
                              locations: dict[str, tuple[int, int]]) -> None:
    """In-memory initializers that still read the replaced data file now read the new one."""
    for name, value in model.graph.initializers.items():
        tensor = value.const_value
        if not isinstance(tensor, ir.ExternalTensor) or Path(tensor.path).resolve() not in old_files:
            continue
        if name not in locations:
            continue
        offset, length = locations[name]
        value.const_value = ir.ExternalTensor(
            data_path.name, offset, length, tensor.dtype, shape=tensor.shape, name=tensor.name,
            base_dir=data_path.parent,
        )


def _remove_unused_data_files(model: ir.Model, path: Path, old_files: set[Path]) -> None:
    """Delete data files of the replaced model that we named and nothing in memory still reads."""
    ours = {(path.parent / n).resolve() for n in data_name_candidates(path)}
    still_read = {
        Path(v.const_value.path).resolve()
        for v in model.graph.initializers.values()
        if isinstance(v.const_value, ir.ExternalTensor)
    }
    for old in old_files & ours:
        if old not in still_read:
            old.unlink(missing_ok=True)


def _all_external_tensors(proto: onnx.ModelProto) -> Iterator[onnx.TensorProto]:
    from onnx.external_data_helper import _get_all_tensors

    for tensor in _get_all_tensors(proto):
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            yield tensor


def _needs_external_data(model: ir.Model) -> bool:
    total = 0
    for value in model.graph.initializers.values():
        tensor = value.const_value
        if tensor is None:
            continue
        if isinstance(tensor, ir.ExternalTensor):
            return True
        total += tensor.nbytes
    return total > EXTERNAL_DATA_THRESHOLD_BYTES
