"""Locating the shared corpus of real models (tests and benchmarks).

The corpus lives in ``../shared/models`` beside the project checkout (or where
``QONNX_TOOLS_SHARED`` points). A user's fresh clone does not have it: callers
get an empty list / None and skip.
"""

from __future__ import annotations

import os
from pathlib import Path

_PROJECT_ROOT = Path(__file__).resolve().parents[1]


def shared_dir() -> Path | None:
    """The shared folder (with models/, seeds/, reference/), or None when absent."""
    env = os.environ.get("QONNX_TOOLS_SHARED")
    candidate = Path(env) if env else _PROJECT_ROOT.parent / "shared"
    return candidate if (candidate / "models").is_dir() else None


def shared_models(pattern: str = "**/*.onnx") -> list[Path]:
    """Model files of the shared corpus matching ``pattern`` (sorted), or [] when absent."""
    root = shared_dir()
    if root is None:
        return []
    return sorted(p for p in (root / "models").glob(pattern) if p.is_file())


def brevitas_models() -> list[Path]:
    """The shared Brevitas corpus folders (each with qonnx.onnx/qcdq.onnx/io.npz...)."""
    root = shared_dir()
    if root is None:
        return []
    return sorted(p for p in (root / "models" / "brevitas").iterdir() if p.is_dir())
