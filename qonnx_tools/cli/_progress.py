"""The progress bar of long commands: tqdm on stderr (hidden when stderr is not a terminal)."""

from __future__ import annotations

import sys


def progress_bar(description: str, unit: str = "batch"):
    """A callable wrapping an iterable in a tqdm bar (total from ``len`` when it has one)."""
    from tqdm import tqdm

    def wrap(iterable):
        try:
            total = len(iterable)
        except TypeError:  # a generator (or a wrapper around one) has no length: a bar without a total
            total = None
        return tqdm(iterable, total=total, desc=description, unit=unit, file=sys.stderr, disable=None, leave=False)

    return wrap
