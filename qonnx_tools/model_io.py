"""Loading and saving models: alias normalisation on load, atomic writes on save.

``load`` returns an ``onnx_ir`` Model whose QONNX/FINN/Brevitas domain spellings
are rewritten to the canonical ones (qonnx_tools.domains). Large initializers
stored as external data stay on disk until used (onnx_ir's lazy external tensors).

``save`` never leaves a partial file: it writes a temporary file in the target
directory and renames it over the target (an atomic step on POSIX and Windows).
With external data, the data file is written under a temporary name too and
both are renamed at the end, data first.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import onnx

from qonnx_tools._ir import ir
from qonnx_tools.atomic import atomic_target, write_bytes_atomic
from qonnx_tools.domains import QONNX, STANDARD, canonical_domain
from qonnx_tools.errors import ModelLoadError, ModelSaveError

#: Protobuf messages cannot exceed 2 GiB; above this many initializer bytes, save externally.
EXTERNAL_DATA_THRESHOLD_BYTES = 1_800_000_000

#: Opset assumed for the QONNX domain when a file uses its ops without importing it
#: (Brevitas' old ``onnx.brevitas`` exports); version 1 is the semantics those files had.
DEFAULT_QONNX_OPSET = 1

PathLike = str | os.PathLike


def load(path: PathLike, *, normalise: bool = True) -> ir.Model:
    """Read an ONNX model file into the IR; with ``normalise``, canonicalise operator domains."""
    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"{path}: no such file")
    try:
        model = ir.load(path)
    except Exception as exc:  # onnx/protobuf raise many types; name the file, keep one line
        raise ModelLoadError(f"{path}: not a readable ONNX model ({_first_line(exc)})") from exc
    _check_header(model, path)
    if normalise:
        normalise_domains(model)
    return model


def _check_header(model: ir.Model, path: Path) -> None:
    """Reject files that parse as protobuf but are no ONNX model (e.g. an empty file)."""
    if not model.ir_version or model.ir_version < 1:
        raise ModelLoadError(f"{path}: not an ONNX model (no ir_version; empty or foreign file?)")
    if model.ir_version > onnx.IR_VERSION:
        raise ModelLoadError(
            f"{path}: IR version {model.ir_version} is newer than this onnx package supports ({onnx.IR_VERSION})"
        )
    if not model.graph.outputs:
        raise ModelLoadError(f"{path}: graph {model.graph.name!r} has no outputs")


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
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise ModelSaveError(f"{path}: directory {path.parent} does not exist")
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
        raise ModelSaveError(f"{path}: could not save model ({_first_line(exc)})") from exc
    return path


def external_data_name(path: Path) -> str:
    """File name (relative to the model's directory) of a model's external data."""
    return path.name + ".data"


def _save_with_external_data(model: ir.Model, path: Path) -> None:
    data_name = external_data_name(path)
    # Nesting order: the inner (data) target is renamed into place before the model.
    with atomic_target(path) as tmp_model, atomic_target(path.parent / data_name) as tmp_data:
        ir.save(model, tmp_model, external_data=tmp_data.name, size_threshold_bytes=1024)
        # ir.save recorded the temporary data name; point the model at the final name.
        proto = onnx.load(str(tmp_model), load_external_data=False)
        for tensor in _all_external_tensors(proto):
            for entry in tensor.external_data:
                if entry.key == "location":
                    entry.value = data_name
        with open(tmp_model, "wb") as handle:
            handle.write(proto.SerializeToString())
            handle.flush()
            os.fsync(handle.fileno())
        if not tmp_data.exists():  # nothing was large enough to go external
            tmp_data.touch()


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


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
