"""Callbacks a training run (``lab.training.loop``: distillation and teacher training) calls while it trains.
Subclass ``Callback`` (override what you need) or wrap a plain function with ``FunctionCallback`` (a notebook's
live plot). Events:

    on_step(state)                     after every logged optimizer step; state = StepState below
    on_eval(step, metrics)             after each validation (val/... keys)
    on_phase(step, old, new, reason)   phase names; old is None at the start
    on_checkpoint(step, path, best)    after a checkpoint is on disk
    on_end(final)                      with the run's final dict

``RunStoreLogger`` (always on, rank 0) writes everything to the run store the dashboard reads. A callback with
``all_ranks = True`` is called on every rank of a multi-process run; the others on rank 0 only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from lab.errors import ConfigError


@dataclass
class StepState:
    step: int
    phase: int
    phase_name: str
    scalars: dict = field(default_factory=dict)   # train/..., weight/..., lr, perf/...


class Callback:
    def on_step(self, state: StepState) -> None: ...
    def on_eval(self, step: int, metrics: dict) -> None: ...
    def on_phase(self, step: int, old: str | None, new: str, reason: str) -> None: ...
    def on_checkpoint(self, step: int, path: str, best: bool) -> None: ...
    def on_end(self, final: dict) -> None: ...


class FunctionCallback(Callback):
    """Calls ``fn(event, **payload)`` for every event, e.g. ``fn('step', state=...)``. Pass
    ``events=('step', 'eval')`` to subscribe to a subset."""

    def __init__(self, fn: Callable, events=("step", "eval", "phase", "checkpoint", "end")):
        self.fn, self.events = fn, set(events)

    def on_step(self, state):
        if "step" in self.events:
            self.fn("step", state=state)

    def on_eval(self, step, metrics):
        if "eval" in self.events:
            self.fn("eval", step=step, metrics=metrics)

    def on_phase(self, step, old, new, reason):
        if "phase" in self.events:
            self.fn("phase", step=step, old=old, new=new, reason=reason)

    def on_checkpoint(self, step, path, best):
        if "checkpoint" in self.events:
            self.fn("checkpoint", step=step, path=path, best=best)

    def on_end(self, final):
        if "end" in self.events:
            self.fn("end", final=final)


class RunStoreLogger(Callback):
    """Writes steps, evals and phase changes to a RunStore (checkpoints/samples are recorded by the
    trainer itself, which knows their metrics)."""

    def __init__(self, store, phase_index: Callable[[str], int]):
        self.store, self.phase_index = store, phase_index

    def on_step(self, state):
        self.store.log_scalars(state.step, {**state.scalars, "phase": state.phase})

    def on_eval(self, step, metrics):
        self.store.log_scalars(step, metrics)
        self.store.log_event(step, "eval", metrics)

    def on_phase(self, step, old, new, reason):
        self.store.start_phase(self.phase_index(new), new, step, reason)


class TensorBoardLogger(Callback):
    """Mirrors scalars into a TensorBoard event folder (needs the ``tensorboard`` package)."""

    def __init__(self, logdir: str):
        try:
            # deferred: tensorboard is optional (see the except below)
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise ConfigError("TensorBoardLogger needs the 'tensorboard' package: pip install tensorboard "
                              "(or drop the logger; the run store already records every scalar).") from None
        self.writer = SummaryWriter(logdir)

    def on_step(self, state):
        for k, v in state.scalars.items():
            self.writer.add_scalar(k, v, state.step)

    def on_eval(self, step, metrics):
        for k, v in metrics.items():
            self.writer.add_scalar(k, v, step)
        self.writer.flush()

    def on_phase(self, step, old, new, reason):
        self.writer.add_text("phase", f"{old} -> {new}: {reason}", step)

    def on_end(self, final):
        self.writer.close()


def as_callback(obj) -> Callback:
    if isinstance(obj, Callback):
        return obj
    if callable(obj):
        return FunctionCallback(obj)
    raise ConfigError(f"a callback must be a lab.training.hooks.Callback or a function fn(event, **payload), got "
                      f"{type(obj).__name__}.")
