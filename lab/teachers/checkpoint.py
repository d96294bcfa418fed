"""What a teacher run's checkpoint holds, written and read the way every training run of the lab does it
(``lab.training.checkpoints``): ``<run>/checkpoints/step-NNNNNNN/`` with the VAE's weights as
``model.*`` tensors in safetensors and the rest of the training state in a weights_only-loadable file
(optimizer, step, wall time, the data and noise generators and torch's RNG, the run's config as a dict,
the session metadata the card quotes). Each folder is written under a temporary name and renamed into
place, so an interrupted write leaves the previous checkpoint valid; the newest ``KEEP`` are kept.

Runs made before teacher runs shared this format kept one ``<run>/state.pt``; ``load_state`` still reads
it (resume, warm start, export), and the next checkpoint of a resumed one is written the new way.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import torch

from lab.errors import CheckpointError
from lab.training.checkpoints import CheckpointFolder
from lab.training.run_folder import UNREADABLE_PREFIX

#: A run folder's state from before teacher checkpoints were step folders (still read, never written).
LEGACY_STATE_FILE = "state.pt"
#: What a readable teacher checkpoint's state must hold.
STATE_KEYS = ("step", "optimizer", "rng", "config")
#: Checkpoints kept per run: the newest, and one before it in case the newest cannot be read.
KEEP = 2
_MODEL = "model."


def checkpoint_folder(run_dir: Path) -> CheckpointFolder:
    return CheckpointFolder(run_dir, STATE_KEYS, weights_prefix=_MODEL)


def is_teacher_run(folder: Path) -> bool:
    """Whether ``folder`` holds a teacher run's training state (a checkpoint, or a legacy state.pt)."""
    return bool(checkpoint_folder(folder).complete()) or (Path(folder) / LEGACY_STATE_FILE).is_file()


def save_state(run_dir: Path, state: dict) -> Path:
    """Write ``state`` (with its ``model`` state dict) as the run's checkpoint at ``state['step']``; returns
    the checkpoint folder (``prune_checkpoints`` then drops the older ones)."""
    rest = {k: v for k, v in state.items() if k != "model"}  # checked as plain by write
    tensors = {_MODEL + k: v for k, v in state["model"].items()}
    return checkpoint_folder(Path(run_dir)).write(state["step"], tensors, rest, {"step": state["step"]})


def prune_checkpoints(run_dir: Path, forget=lambda step: None) -> None:
    """Keep the newest ``KEEP`` checkpoints; ``forget(step)`` drops one from the run store before its files go."""
    checkpoint_folder(Path(run_dir)).prune(KEEP, None, forget)


def load_state(run_dir: Path, *, set_aside=None) -> dict | None:
    """The run's newest readable training state (``model`` holds the state dict), or None when the run has
    none yet. A checkpoint that cannot be read is skipped; with ``set_aside(path, aside, error)`` (a resume,
    which owns the folder) it is also moved aside as ``unreadable-step-*`` and the callback told."""
    run_dir = Path(run_dir)
    ckpts = checkpoint_folder(run_dir)
    # A reader (export, warm start) leaves another run's folder as it is.
    picked = ckpts.pick("cpu", on_unreadable=set_aside or (lambda *a: None), set_aside=set_aside is not None)
    if picked is not None:
        _, tensors, state = picked
        return {**state, "model": {k[len(_MODEL):]: v for k, v in tensors.items() if k.startswith(_MODEL)}}
    if (run_dir / LEGACY_STATE_FILE).is_file():
        return _load_legacy(run_dir / LEGACY_STATE_FILE)
    # A resume has just set the damaged ones aside: starting over from step 0 would silently throw the run's
    # training away, so that is the user's call.
    if ckpts.complete() or (set_aside is not None and any(ckpts.dir.glob(UNREADABLE_PREFIX + "*"))):
        raise CheckpointError(f"no checkpoint in {ckpts.dir} can be read; they are damaged. Point --run at "
                              f"another run, or move {ckpts.dir} away to start this run over.")
    return None


def _load_legacy(path: Path) -> dict:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(f"{path} holds objects other than tensors and plain containers, so it is not "
                              f"loaded (that would run pickled code; {exc}). Re-create the run, or if you trust "
                              f"the file, re-save it with only tensors and dicts.") from exc
    except Exception as exc:
        raise CheckpointError(f"cannot read the training state {path} ({type(exc).__name__}: {exc}); it is "
                              f"damaged. Delete it to start the run over, or point --run at another run.") from exc


def rng_state(generators: dict[str, torch.Generator]) -> dict:
    return {"torch": torch.get_rng_state(), **{k: g.get_state() for k, g in generators.items()}}


def restore_rng(state: dict, generators: dict[str, torch.Generator]) -> None:
    torch.set_rng_state(state["torch"])
    for k, g in generators.items():
        g.set_state(state[k])
