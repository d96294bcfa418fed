"""What a training run trains, as the loop (``lab.training.loop.fit``) sees it: a ``Task``. Distillation
(``lab.distill.trainer.DistillTask``) and teacher training (``lab.teachers.train.TeacherTask``) are the two.

The loop owns everything around the step: the run folder and store, signals, the learning-rate schedule,
back-propagation, DDP, grad clipping, the NaN policy, checkpoint cadence and content, finish / fail / resume.
A task says what is trained and how it is judged:

- ``setup(run)`` builds models, data and optimizers, and returns the module the loop wraps in DDP; ``begin``
  opens a run that starts from scratch (its first phase, a warm start);
- ``schedule(step, wall_s)`` where the step is on the warmup + cosine schedule (``Schedule``);
- ``step(step, model)`` samples a batch and returns its losses (``Step``: the ``Objective`` s the loop
  minimises, and the scalars it logs); ``after_update()`` runs after the optimizers stepped (an EMA);
- ``evaluate(step)`` validates (or returns None), ``after_step(step, scalars, metrics)`` takes the task's
  decisions (a phase switch, an export due) and says whether they want a checkpoint now;
- ``state_dict()`` / ``load_state_dict(...)``: what a checkpoint holds beside the loop's own part (step, training
  time, RNG), and ``rank_state()`` / ``load_rank_state(...)`` the per-rank generators; ``checkpointed`` runs
  after each checkpoint (``last/``, an export), ``best_record`` names the best one to keep; ``upgrade`` and
  ``legacy_checkpoint`` read the task's older checkpoint formats;
- ``done``, ``complete``, ``steps_left`` and ``final``: when and how the run ends.

``setup``, ``schedule``, ``step``, ``done`` and the state are required; the other hooks default to doing nothing
(tests/training/test_loop.py trains a toy task).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, NamedTuple

import torch
from torch import nn


@dataclass
class Cadence:
    """How often the loop logs, validates and checkpoints (0: never; a run always checkpoints its start and end)."""
    log_every: int = 1
    eval_every: int = 0
    checkpoint_every: int = 0          # steps
    checkpoint_minutes: float = 0.0    # wall time since the last checkpoint
    keep_checkpoints: int = 2          # the newest N, and the best one where the task has a best


class Schedule(NamedTuple):
    """Arguments of ``lab.training.schedule.lr_at``: where the step is on the warmup + cosine curve."""
    position: int
    total: int
    base_lr: float
    warmup: int
    min_ratio: float
    min_progress: float = 0.0


@dataclass
class Objective:
    """One loss the loop minimises this step: it back-propagates ``loss``, averages the gradients over the ranks
    (DDP does it for the wrapped module; ``in_ddp=False`` makes the loop do it), clips them to ``clip`` (0: no
    clipping) and steps ``optimizer``, whose learning rate follows the schedule when ``scheduled``."""
    loss: torch.Tensor
    optimizer: torch.optim.Optimizer
    params: list
    clip: float = 0.0
    scheduled: bool = True
    in_ddp: bool = True


@dataclass
class Step:
    """What one training step of a task produced. ``scalars`` (``train/loss`` among them, which the progress line
    shows) are logged as they are (tensors are read only at logged steps: reading one waits for the GPU);
    ``samples`` is this rank's batch size; ``phase`` and
    ``phase_name`` say where the run is (``StepState``); ``explain()`` names, when a loss is not finite, the
    culprit and what to lower, e.g. ("phase 'joint', terms ['gan']", "optim.lr or the weight of ['gan']")."""
    objectives: list[Objective]
    scalars: dict
    samples: int
    phase: int = 0
    phase_name: str = "train"
    explain: Callable[[], tuple[str, str]] = lambda: ("", "the learning rate")


@dataclass
class RunContext:
    """What the loop hands a task at setup: the run folder, the ranks, the store (rank 0 only, else None),
    ``emit(event, *args)`` for the callbacks (``lab.training.hooks``) and ``warn(text)`` (logged once per run)."""
    out: Path
    env: object
    store: object
    emit: Callable
    warn: Callable[[str], None]
    warnings: list = field(default_factory=list)


class Task:
    kind = "run"                 # the run store's kind: a run is never resumed as another kind
    label = "train"              # the progress line's name
    flag = "--out"               # the option that names the run folder, in messages
    can_overwrite = True         # whether the command offers --overwrite for that folder
    weights_prefix = ""          # a complete checkpoint holds a tensor named so ...
    state_keys: tuple = ()       # ... and these keys in its state
    resume_hint = "resume it"    # how the user resumes a run, in messages
    restart_hint = "start the run over"
    device = "cpu"
    cadence = Cadence()

    def config(self) -> dict:
        """The run's config, recorded in the store (and compared with on resume)."""
        return {}

    def setup(self, run: RunContext) -> nn.Module:
        raise NotImplementedError

    def begin(self, step: int, restored: bool) -> None:
        """A run (or its store) starts: from scratch (``restored`` False), or a run written before run stores."""

    def phase_index(self, name: str) -> int:
        """The run store's index of phase ``name`` (a run of one phase: 0)."""
        return 0

    def schedule(self, step: int, wall_s: float) -> Schedule:
        raise NotImplementedError

    def step(self, step: int, model: nn.Module) -> Step:
        raise NotImplementedError

    def after_update(self) -> None:
        """Called after every optimizer of the step has stepped."""

    def evaluate(self, step: int) -> dict | None:
        return None

    def after_step(self, step: int, scalars: dict | None, metrics: dict | None) -> bool:
        """The task's decisions after a step (``scalars`` at logged steps, ``metrics`` after a validation);
        True asks the loop for a checkpoint now."""
        return False

    def checkpointed(self, step: int, wall_s: float) -> None:
        """Rank 0, after a checkpoint is written and listed (e.g. ``last/``, an export)."""

    def best_record(self) -> tuple[str, float, int | None] | None:
        """(metric name, best value, its step) when the run keeps a best checkpoint, else None."""
        return None

    def done(self, step: int, wall_s: float) -> bool:
        raise NotImplementedError

    def complete(self, step: int) -> bool:
        """Whether the run reached its planned end (finished) rather than stopping early (interrupted)."""
        return True

    def steps_left(self, step: int) -> int:
        return 0

    def state_dict(self) -> tuple[dict[str, torch.Tensor], dict, dict]:
        """(tensors, state, meta.json) of a checkpoint, the loop's own keys aside."""
        raise NotImplementedError

    def load_state_dict(self, tensors: dict, state: dict, path: Path) -> None:
        raise NotImplementedError

    def upgrade(self, state: dict) -> dict:
        """A checkpoint's state in today's layout (older formats of the task's checkpoints)."""
        return state

    def legacy_checkpoint(self) -> tuple[Path, dict, dict] | None:
        """(path, tensors, state) of a run made before checkpoint folders, or None."""
        return None

    def rank_state(self):
        """This rank's generator state(s), gathered from every rank into the checkpoint."""
        return None

    def load_rank_state(self, state) -> None:
        pass

    def final(self, step: int, wall_s: float, metrics: dict | None, signalled: bool) -> dict:
        """The run's final record (the store's ``final``; what ``fit`` returns)."""
        return {"step": step}
