"""Progress for long loops: a tqdm bar on a terminal, nothing per-iteration in log files."""

from __future__ import annotations

import sys
from typing import Iterable


def progress(iterable: Iterable, desc: str = "", total: int | None = None) -> Iterable:
    """tqdm when stderr is a terminal; otherwise the bare iterable (callers print per-epoch lines)."""
    if sys.stderr.isatty():
        from tqdm import tqdm

        return tqdm(iterable, desc=desc, total=total, leave=False)
    return iterable
