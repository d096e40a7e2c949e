"""The progress bar of long commands: tqdm on stderr (hidden when stderr is not a terminal)."""

from __future__ import annotations

import sys


def progress_bar(description: str, unit: str = "batch"):
    """A callable wrapping an iterable in a tqdm bar (total from ``len`` when it has one)."""
    from tqdm import tqdm

    def wrap(iterable):
        total = len(iterable) if hasattr(iterable, "__len__") else None
        return tqdm(iterable, total=total, desc=description, unit=unit, file=sys.stderr, disable=None, leave=False)

    return wrap
