"""Warm start: begin a new run from another run's (or an exported folder's) model weights only.

The optimizer, step, schedule and RNG start fresh; only the weights carry over. This is how a
teacher trained on short windows continues on longer ones with a new warmup + cosine schedule.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file

from lab.cards import read_provenance
from lab.errors import CheckpointError
from lab.teachers.checkpoint import is_teacher_run, load_state, shipped_weights

WEIGHTS = "diffusion_pytorch_model.safetensors"


def load_init_weights(source: str | Path) -> tuple[dict[str, torch.Tensor], dict]:
    """(state_dict in float32, provenance) from a run folder (its newest checkpoint) or a diffusers folder
    (safetensors). The provenance names the source, its step and the command that trained it, for
    the model card."""
    src = Path(source)
    if is_teacher_run(src):
        state = load_state(src)
        meta = state.get("meta") or {}
        return shipped_weights(state), {"source": str(source), "step": state["step"], "command": meta.get("command"),
                                "wall_s": state.get("wall_s")}
    if (src / WEIGHTS).is_file():
        weights = {k: v.float() for k, v in load_file(src / WEIGHTS).items()}
        return weights, {"source": str(source), "step": None, "command": _export_commands(src), "wall_s": None}
    raise CheckpointError(f"--init-from {source}: neither a teacher run folder (checkpoints/step-*) nor a diffusers "
                          f"folder ({WEIGHTS}); point it at e.g. runs/teachers/mini-wan or data/checkpoints/mini-wan.")


def apply_init_weights(vae: torch.nn.Module, weights: dict, source: str) -> None:
    try:
        vae.load_state_dict(weights)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0:3]
        raise CheckpointError(f"--init-from {source}: its weights do not fit this model ({' '.join(first)}); "
                              f"warm-start only from a run of the same --model.") from exc


def _export_commands(folder: Path) -> str | None:
    """The commands that trained an exported teacher, in order, one a line: its provenance record's, or for an
    export made before records existed, its card's (``_card_commands``)."""
    record = read_provenance(folder)
    if record is None:
        return _card_commands(folder / "README.md")
    return "\n".join(record["train_commands"]) or None


def _card_commands(card: Path) -> str | None:
    """The training commands from an exported folder's README, in order: every ``python -m lab teacher
    train`` line of its Reproduce section (a warm-started export lists its whole chain there)."""
    if not card.is_file():
        return None
    lines = card.read_text().splitlines()
    for i, line in enumerate(lines):
        if line.strip() == "## Reproduce":
            found = [f.strip() for f in lines[i + 1:] if f.startswith("python -m lab teacher train")]
            return "\n".join(found) or None
    return None
