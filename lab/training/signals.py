"""How a training run meets SIGTERM and Ctrl-C (a scheduler's preemption, a user stopping it): the run is
marked ``interrupted`` and resumes from its last checkpoint. Two ways, by where the process is:

- in a training loop, ``StopOnSignal``: the signal sets a flag; the loop finishes its step, checkpoints it
  and stops, so nothing trained is lost (teacher runs and distillation alike; a distillation's ranks read
  rank 0's flag, so they all stop after the same step);
- before it, ``signals_interrupt()``: SIGTERM raises KeyboardInterrupt as Ctrl-C does, at once (a
  distillation may spend minutes in setup, caching latents, before its loop can look at a flag).

Both only act in the main thread, the only one Python delivers signals to; elsewhere (a notebook's worker
thread, the dashboard) they leave the handlers alone.
"""

from __future__ import annotations

import logging
import signal
import threading
from contextlib import contextmanager

log = logging.getLogger("lab")

_STOPPING = (signal.SIGTERM, signal.SIGINT)


class StopOnSignal:
    """While active, SIGTERM and SIGINT set ``requested`` instead of killing the process mid-step."""

    def __init__(self):
        self.requested = False
        self._old = {}

    def _handle(self, signum, frame):
        log.info("signal %d: stopping after this step and checkpointing", signum)
        self.requested = True

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in _STOPPING:
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)
        self._old.clear()
        return False


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


@contextmanager
def signals_interrupt():
    """While active, SIGTERM raises KeyboardInterrupt (Ctrl-C already does)."""
    old = None
    if threading.current_thread() is threading.main_thread():
        old = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        yield
    finally:
        if old is not None:
            signal.signal(signal.SIGTERM, old)
