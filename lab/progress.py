"""Progress of long work on stderr, one style for every command (distill, prune, analyze, bench, eval, table,
teacher train, data encode and the main job's steps).

* stderr is a terminal: a tqdm bar with the rate and the time left, as diffusers and huggingface_hub show theirs;
* stderr is not a terminal (a log file, CI, a pipe): a bar's carriage returns would fill the log, so one plain
  line per step, or per ``every`` steps in long loops (and at least one a minute), e.g.
  ``distill: 40/300 steps (13%), 1.90 steps/s, ETA 2m17s``; at most one line every LINE_GAP_S seconds per loop
  (``LAB_PROGRESS_GAP`` in the environment), so loops that take a second write nothing and fast steps do not
  flood the log;
* ``--json`` (the CLI calls ``set_enabled(False)``) or ``LAB_PROGRESS=0`` in the environment: nothing, so a
  machine reading the output gets only the JSON document and the logs.

Use ``Progress`` where the steps are counted by hand and ``track`` around an iterable.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import Iterable, Iterator, TypeVar

T = TypeVar("T")

#: Line mode writes a line at least this often in a loop whose steps are slow (seconds).
LINE_INTERVAL_S = 60.0
#: ... and at most this often (seconds; the environment's LAB_PROGRESS_GAP overrides it).
LINE_GAP_S = 2.0
#: Line mode writes about this many lines per loop when ``every`` is not given.
LINES_PER_LOOP = 20

_enabled = True


def set_enabled(on: bool) -> None:
    """Switch progress output on or off for this process (the CLI switches it off under --json)."""
    global _enabled
    _enabled = bool(on)


def enabled() -> bool:
    return _enabled and os.environ.get("LAB_PROGRESS", "1").strip().lower() not in ("0", "false", "no", "off")


def _isatty(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or replaced stream
        return False


def _gap() -> float:
    try:
        return max(0.0, float(os.environ.get("LAB_PROGRESS_GAP", LINE_GAP_S)))
    except ValueError:
        return LINE_GAP_S


def _has_size(stream) -> bool:
    try:
        size = os.get_terminal_size(stream.fileno())
    except (AttributeError, ValueError, OSError):
        return False
    return size.columns > 0 and size.lines > 0


def _duration(seconds: float) -> str:
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    m, s = divmod(s, 60)
    if m < 60:
        return f"{m}m{s:02d}s"
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m"


class Progress:
    """Count the steps of one piece of work: ``update()`` after each; ``set_total`` when the count changes
    (a distillation phase that ends early); ``close()`` (or a ``with`` block) at the end.

    ``desc`` names the work (``"distill"``), ``unit`` one step (``"step"``, ``"clip"``, ``"decode"``).
    ``every``: in line mode, a line every this many steps (default: about LINES_PER_LOOP lines per loop)."""

    def __init__(self, desc: str, total: int | None = None, *, unit: str = "step", every: int | None = None,
                 stream=None):
        self.desc, self.total, self.unit = desc, total, unit
        self.n = 0
        self._stream = stream if stream is not None else sys.stderr
        self._on = enabled()
        self._every = every
        self._bar = None
        self._t0 = self._last_line = time.monotonic()
        self._lines = 0
        if self._on and _isatty(self._stream):
            from tqdm import tqdm  # deferred: only a terminal draws a bar

            # A terminal that reports no size (a fresh pseudo-terminal) would get no bar at all: give it one.
            sized = _has_size(self._stream)
            self._bar = tqdm(total=total, desc=desc, unit=unit, file=self._stream, leave=False, dynamic_ncols=sized,
                             ncols=None if sized else 100, nrows=None if sized else 24)

    @property
    def every(self) -> int:
        if self._every:
            return max(1, int(self._every))
        return max(1, (self.total or LINES_PER_LOOP) // LINES_PER_LOOP)

    def update(self, n: int = 1, note: str | None = None) -> None:
        """``n`` more steps are done; ``note`` (e.g. the current loss or clip) is shown beside the count."""
        before, self.n = self.n, self.n + n
        if not self._on:
            return
        if self._bar is not None:
            if note:
                self._bar.set_postfix_str(note, refresh=False)
            self._bar.update(n)
            return
        now = time.monotonic()
        crossed = self.n // self.every > before // self.every or self.n == self.total
        since = now - (self._last_line if self._lines else self._t0)
        if (crossed and since >= _gap()) or since >= LINE_INTERVAL_S:
            self._last_line, self._lines = now, self._lines + 1
            self._write(self.line(note, now))

    def set_total(self, total: int | None) -> None:
        self.total = total
        if self._bar is not None:
            self._bar.total = total
            self._bar.refresh()

    def line(self, note: str | None = None, now: float | None = None) -> str:
        """The plain line of line mode: count, share, rate and time left."""
        elapsed = max(1e-9, (now or time.monotonic()) - self._t0)
        rate = self.n / elapsed
        units = f"{self.unit}s" if not self.unit.endswith("s") else self.unit
        if self.total:
            text = f"{self.desc}: {self.n}/{self.total} {units} ({100 * self.n / self.total:.0f}%)"
        else:
            text = f"{self.desc}: {self.n} {units}"
        if self.n:
            text += f", {rate:.2f} {units}/s" if rate >= 1 else f", {1 / rate:.1f} s/{self.unit}"
            if self.total and self.n < self.total:
                text += f", ETA {_duration((self.total - self.n) / rate)}"
            else:
                text += f", {_duration(elapsed)}"
        return text + (f" ({note})" if note else "")

    def _write(self, text: str) -> None:
        try:
            self._stream.write(text + "\n")
            self._stream.flush()
        except (OSError, ValueError):  # stderr closed under us: progress is never worth failing the work
            self._on = False

    def close(self) -> None:
        if self._bar is not None:
            # tqdm redraws at most every 0.1 s and a bar that does not stay (leave=False) is cleared unredrawn:
            # steps faster than that would show only "0/N". Draw the last count once before it goes.
            self._bar.refresh()
            self._bar.close()
            self._bar = None

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def track(iterable: Iterable[T], desc: str, total: int | None = None, *, unit: str = "step",
          every: int | None = None) -> Iterator[T]:
    """Iterate over ``iterable`` with progress (``total`` defaults to ``len(iterable)`` when it has one)."""
    if total is None and hasattr(iterable, "__len__"):
        total = len(iterable)
    with Progress(desc, total, unit=unit, every=every) as p:
        for item in iterable:
            yield item
            p.update()


class LogHandler(logging.StreamHandler):
    """A logging handler for stderr that writes above the bars: on a terminal with bars on screen a plain write
    would land on a bar's line and garble it, so records go through ``tqdm.write`` (which clears the bars,
    writes the line and redraws them); elsewhere (a log file, line mode) it is a plain stream handler."""

    def __init__(self):
        super().__init__(sys.stderr)

    def emit(self, record: logging.LogRecord) -> None:
        if not (enabled() and _isatty(sys.stderr)):
            return super().emit(record)
        try:
            from tqdm import tqdm  # deferred: only a terminal with bars needs it
            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # noqa: BLE001 - logging must never raise
            self.handleError(record)
