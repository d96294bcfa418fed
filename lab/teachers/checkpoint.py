"""Resumable training state, written atomically.

A checkpoint holds everything the next step depends on: model and optimizer state, the step, the
data and noise generators and the global torch RNG, plus the run's config and elapsed wall time.
It is written to a temporary file and renamed over the old one, so an interrupted write never
leaves a half checkpoint behind (the previous one stays valid).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from lab.errors import CheckpointError

STATE_FILE = "state.pt"


def save_state(run_dir: Path, state: dict) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / STATE_FILE
    tmp = run_dir / f".{STATE_FILE}.tmp"
    torch.save(state, tmp)
    os.replace(tmp, path)
    return path


def load_state(run_dir: Path) -> dict | None:
    """The run's last state, or None when the run has none yet."""
    path = Path(run_dir) / STATE_FILE
    if not path.exists():
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise CheckpointError(f"cannot read the training state {path} ({type(exc).__name__}: {exc}); it is "
                              f"damaged. Delete it to start the run over, or point --run at another run.") from exc


def rng_state(generators: dict[str, torch.Generator]) -> dict:
    return {"torch": torch.get_rng_state(), **{k: g.get_state() for k, g in generators.items()}}


def restore_rng(state: dict, generators: dict[str, torch.Generator]) -> None:
    torch.set_rng_state(state["torch"])
    for k, g in generators.items():
        g.set_state(state[k])
