"""Progress for long loops: a tqdm bar on a terminal, a line every ~30 s in a log file.

Under Snakemake every job writes to a log file, where a bar would be unreadable and silence
leaves a user guessing for hours. When stderr is not a terminal, `progress` prints one line

    inversion: 3200/20000 steps (16%), 1.07 steps/s, eta 4:21:41

at most every `ROBINTERP_PROGRESS_INTERVAL` seconds (default 30), and nothing for a loop that
ends sooner. Wrap an iterable (`for b in progress(batches, "bootstrap")`) or count by hand
(`bar = progress(None, "inversion", total=n, unit="steps")`, then `bar.update()` and `bar.close()`).
"""

from __future__ import annotations

import math
import os
import sys
import time
from typing import Callable, Iterable, TextIO

INTERVAL_ENV = "ROBINTERP_PROGRESS_INTERVAL"
DEFAULT_INTERVAL = 30.0  # seconds between lines in a log file


def _interval() -> float:
    text = os.environ.get(INTERVAL_ENV, "")
    try:
        return float(text) if text else DEFAULT_INTERVAL
    except ValueError:
        from .errors import RobinterpError

        raise RobinterpError(f"{INTERVAL_ENV}={text!r}: expected seconds between progress lines, e.g. 30") from None


def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    s = round(seconds)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


class LogProgress:
    """Counts work and prints done/total, rate and ETA at most every `interval` seconds."""

    def __init__(
        self,
        iterable: Iterable | None = None,
        desc: str = "",
        total: int | None = None,
        unit: str = "it",
        interval: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        stream: TextIO | None = None,
    ):
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)
        self.iterable, self.desc, self.total, self.unit = iterable, desc, total, unit
        self.interval = _interval() if interval is None else interval
        self.clock, self.stream = clock, stream
        self.done = 0
        self.start = self.last = clock()

    def __iter__(self):
        for item in self.iterable:
            yield item
            self.update()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def update(self, n: int = 1) -> None:
        self.done += n
        now = self.clock()
        if now - self.last >= self.interval:
            self.last = now
            print(self.line(now), file=self.stream or sys.stderr, flush=True)

    def line(self, now: float) -> str:
        rate = self.done / max(now - self.start, 1e-9)
        shown = f"{rate:.0f}" if rate >= 100 else f"{rate:.3g}"  # 1805, 12.3, 0.0421: no exponents
        prefix = f"{self.desc}: " if self.desc else ""
        if self.total is None:
            return f"{prefix}{self.done} {self.unit}, {shown} {self.unit}/s"
        pct = 100 * self.done / max(self.total, 1)
        eta = (self.total - self.done) / rate if rate > 0 else math.inf
        return f"{prefix}{self.done}/{self.total} {self.unit} ({pct:.0f}%), {shown} {self.unit}/s, eta {_duration(eta)}"

    def close(self) -> None:
        pass  # no closing line: the caller prints its own summary


def progress(
    iterable: Iterable | None = None, desc: str = "", total: int | None = None, unit: str = "it", silent: bool = False
):
    """tqdm when stderr is a terminal, else a `LogProgress`; both iterate and have update/close.
    `silent`: count without printing (e.g. every rank but the first under torchrun)."""
    if sys.stderr.isatty():
        from tqdm import tqdm

        return tqdm(iterable, desc=desc, total=total, unit=unit, leave=False, disable=silent)
    return LogProgress(iterable, desc, total, unit, interval=math.inf if silent else None)


def counting(objective: Callable, bar) -> Callable:
    """`objective` that ticks `bar` once per call: PGD evaluates its objective once per step."""

    def counted(*args, **kwargs):
        out = objective(*args, **kwargs)
        bar.update()
        return out

    return counted
