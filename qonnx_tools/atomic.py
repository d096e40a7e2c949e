"""Atomic file replacement: write a temporary file beside the target, rename on success.

A failure or interrupt (KeyboardInterrupt included) removes the temporary file
and leaves the target as it was (absent, or with its old contents).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def atomic_target(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path in ``path``'s directory; it replaces ``path`` when the block succeeds."""
    path = Path(path)
    tmp: Path | None = None
    try:
        # created inside the try: an interrupt right after mkstemp still removes it
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        tmp = Path(tmp_name)
        os.close(fd)
        yield tmp
    except BaseException:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        raise
    try:
        os.chmod(tmp, _mode_for(path))
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (fsync before the rename)."""
    with atomic_target(path) as tmp, open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _mode_for(path: Path) -> int:
    """Permissions for the new file: the existing file's, else the default under the umask."""
    try:
        return path.stat().st_mode & 0o777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask
