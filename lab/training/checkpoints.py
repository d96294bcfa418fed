"""A run's ``checkpoints/`` folder: one ``step-NNNNNNN`` folder per checkpoint (safetensors weights + a
weights_only-loadable state file + meta.json), written under a temporary name and renamed into place,
so a kill leaves either the previous checkpoints or the new one complete, never half of one.

What goes into a checkpoint (the training state) is the training loop's business (a distillation's student,
heads, EMA and discriminator; a teacher's VAE); this module owns how it is written, listed, pruned, read back
and set aside when it cannot be read. The state file holds only tensors, numbers, strings and containers of
them (``check_plain``), so it loads with ``torch.load(weights_only=True)``: reading a run folder never
executes pickled code.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Callable

import torch
from safetensors.torch import load_file, save_file

from lab.training.run_folder import UNREADABLE_PREFIX
from lab.errors import CheckpointError
from lab.files import move_aside, remove_tree, replace_folder

log = logging.getLogger("lab")

CKPT_WEIGHTS = "weights.safetensors"
CKPT_STATE = "state.pt"

_PLAIN = (str, int, float, bool, type(None), torch.Tensor, torch.dtype, torch.device)


def check_plain(value, where: str = "state") -> None:
    """Raise if ``value`` holds anything torch.load(weights_only=True) would refuse to read, instead of
    writing a file that could not be read back."""
    if isinstance(value, dict):
        for k, v in value.items():
            check_plain(k, f"{where} key")
            check_plain(v, f"{where}[{k!r}]")
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            check_plain(v, f"{where}[{i}]")
    elif not isinstance(value, _PLAIN):
        raise CheckpointError(f"{where} is a {type(value).__name__}; a training state may hold only tensors, "
                              f"numbers, strings and dicts/lists of them (convert it, e.g. with to_dict()).")


class CheckpointFolder:
    """``run/checkpoints``. ``state_keys`` and ``weights_prefix`` say what a complete checkpoint of this kind of
    run holds (a state key each, and at least one tensor named ``<prefix>...``); one that lacks them is
    incomplete and set aside on resume like a damaged one."""

    def __init__(self, run: Path, state_keys: tuple[str, ...], weights_prefix: str):
        self.dir = Path(run) / "checkpoints"
        self.state_keys, self.weights_prefix = tuple(state_keys), weights_prefix

    def complete(self) -> list[Path]:
        """Checkpoint folders whose state file was written (the last file a checkpoint writes), oldest first.
        All of them are this run's: a run folder holds one run (lab.training.run_folder)."""
        return sorted(p for p in self.dir.glob("step-*") if (p / CKPT_STATE).exists())

    def latest(self) -> str | None:
        done = self.complete()
        return str(done[-1]) if done else None

    def write(self, step: int, tensors: dict[str, torch.Tensor], state: dict, meta: dict) -> Path:
        """Write checkpoint ``step`` (replacing this step's earlier one, as the run's end writes its last step
        again) and return its folder."""
        check_plain(state)
        final = self.dir / f"step-{step:07d}"
        tmp = self.dir / f".step-{step:07d}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp / CKPT_WEIGHTS))
        torch.save(state, tmp / CKPT_STATE)
        (tmp / "meta.json").write_text(json.dumps(meta))
        return replace_folder(tmp, final)

    def prune(self, keep: int, protect: Path | None, forget: Callable[[int], None]) -> None:
        """Remove all but the newest ``keep`` checkpoints, never ``protect`` (the best one). ``forget(step)``
        drops a checkpoint from the run store before its files go."""
        for p in self.complete()[:-keep]:
            if protect is None or p.resolve() != protect:
                # Forgotten first, then renamed away whole: a kill in between leaves neither a listed
                # checkpoint without files nor a half-deleted one (the temporary name is cleared on resume).
                forget(checkpoint_step(p))
                remove_tree(p)

    def read(self, path: Path, device) -> tuple[dict, dict]:
        """(tensors, state) of a checkpoint folder; CheckpointError when a file cannot be read or is incomplete."""
        try:
            tensors = load_file(str(path / CKPT_WEIGHTS), device=str(device))
            state = torch.load(path / CKPT_STATE, map_location=device, weights_only=True)
        except Exception as exc:  # a cut or damaged file fails in many ways (safetensors, pickle, zip, OS errors)
            raise CheckpointError(f"checkpoint {path} cannot be read ({type(exc).__name__}: {exc})") from None
        missing = [k for k in self.state_keys if not isinstance(state, dict) or k not in state]
        if missing or not any(k.startswith(self.weights_prefix) for k in tensors):
            raise CheckpointError(f"checkpoint {path} is incomplete (missing {missing or 'the model weights'})")
        return tensors, state

    def pick(self, device, on_unreadable: Callable[[Path, Path, CheckpointError], None] = lambda *a: None,
             set_aside: bool = True):
        """(path, tensors, state) of the newest readable checkpoint, or None. Unreadable ones (a disk error,
        a file cut short) are skipped; with ``set_aside`` (a resume, which owns the folder; a reader such as an
        export leaves it as it is) they are moved aside as ``unreadable-step-*`` and ``on_unreadable(path,
        aside, error)`` is told (the trainer records an event)."""
        for path in reversed(self.complete()):
            try:
                return (path, *self.read(path, device))
            except CheckpointError as exc:
                if not set_aside:
                    continue
                aside = move_aside(path, path.with_name(UNREADABLE_PREFIX + path.name.split("-", 1)[1]))
                log.warning("%s; set aside as %s, resuming from the checkpoint before it", exc, aside)
                on_unreadable(path, aside, exc)
        return None


def restore_checkpoint_records(store, path: Path, step: int, best_step: int | None, best: float, metric: str) -> None:
    """The store's checkpoint list as it was when ``path`` (step ``step``) was written: truncation dropped the
    later ones (and with a later best, the best mark), and a kill may have come before ``path`` was listed."""
    listed = {c.step: c for c in store.checkpoints()}
    if step not in listed:
        is_best = best_step == step
        store.add_checkpoint(step, path, metric, best if is_best else None, is_best=is_best)
        listed = {c.step: c for c in store.checkpoints()}
    previous_best = listed.get(best_step)
    if previous_best is not None and not previous_best.is_best:
        store.add_checkpoint(previous_best.step, store.resolve(previous_best.path), metric, best, is_best=True)


def log_set_aside(store, path: Path, aside: Path, exc: Exception) -> None:
    """Record in the run store that checkpoint ``path`` could not be read and was moved to ``aside`` (a session
    event: it stays when the run is resumed and truncated)."""
    store.log_event(checkpoint_step(path), "checkpoint_skipped",
                    {"checkpoint": str(path), "moved_to": str(aside), "reason": str(exc)})


def checkpoint_step(path: Path) -> int:
    return int(path.name.rsplit("-", 1)[1])
