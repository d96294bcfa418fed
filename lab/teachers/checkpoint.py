"""Resumable training state, written atomically.

A checkpoint holds everything the next step depends on: model and optimizer state, the step, the
data and noise generators and the global torch RNG, plus the run's config and elapsed wall time.
It is written to a temporary file and renamed over the old one, so an interrupted write never
leaves a half checkpoint behind (the previous one stays valid).

The state holds only tensors, numbers, strings, None and dicts/lists/tuples of them (the config
as ``TrainConfig.to_dict()``), so it loads with ``torch.load(weights_only=True)``: reading a run
folder never executes pickled code. ``save_state`` refuses anything else instead of writing a
file that could not be read back.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import torch

from lab.errors import CheckpointError

STATE_FILE = "state.pt"


_PLAIN = (str, int, float, bool, type(None), torch.Tensor, torch.dtype, torch.device)


def _check_plain(value, where: str = "state") -> None:
    """Raise if ``value`` holds anything torch.load(weights_only=True) would refuse to read."""
    if isinstance(value, dict):
        for k, v in value.items():
            _check_plain(k, f"{where} key")
            _check_plain(v, f"{where}[{k!r}]")
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _check_plain(v, f"{where}[{i}]")
    elif not isinstance(value, _PLAIN):
        raise CheckpointError(f"{where} is a {type(value).__name__}; a training state may hold only tensors, "
                              f"numbers, strings and dicts/lists of them (convert it, e.g. with to_dict()).")


def save_state(run_dir: Path, state: dict) -> Path:
    _check_plain(state)
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
