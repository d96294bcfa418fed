"""Warm start: begin a new run from another run's (or an exported folder's) model weights only.

The optimizer, step, schedule and RNG start fresh; only the weights carry over. This is how a
teacher trained on short windows continues on longer ones with a new warmup + cosine schedule.
"""

from __future__ import annotations

import re
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
        earlier = (meta.get("init_from") or {}).get("history") or []
        this = run_entry(state["step"], state.get("wall_s"), meta.get("machine"), meta.get("started"),
                         meta.get("command"))
        return shipped_weights(state), {"source": str(source), "step": state["step"], "command": meta.get("command"),
                                        "wall_s": state.get("wall_s"), "history": [*earlier, this]}
    if (src / WEIGHTS).is_file():
        weights = {k: v.float() for k, v in load_file(src / WEIGHTS).items()}
        return weights, {"source": str(source), "step": None, "command": _export_commands(src), "wall_s": None,
                         "history": export_history(src)}
    raise CheckpointError(f"--init-from {source}: neither a teacher run folder (checkpoints/step-*) nor a diffusers "
                          f"folder ({WEIGHTS}); point it at e.g. runs/teachers/mini-wan or data/checkpoints/mini-wan.")


def apply_init_weights(vae: torch.nn.Module, weights: dict, source: str) -> None:
    try:
        vae.load_state_dict(weights)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0:3]
        raise CheckpointError(f"--init-from {source}: its weights do not fit this model ({' '.join(first)}); "
                              f"warm-start only from a run of the same --model.") from exc


def run_entry(steps: int, train_s: float | None, machine: str | None, started: str | None,
              command: str | None) -> dict:
    """One training run in a teacher's history: how many steps, how long, on what, from which command."""
    return {"steps": steps, "train_s": None if train_s is None else round(float(train_s), 1), "machine": machine,
            "started": started, "command": command}


def record_history(record: dict) -> list[dict]:
    """Every run behind an exported teacher's weights, oldest first (``run_entry``): its record's ``history``, or
    for a record written before it kept one, the warm start's history and the record's own run."""
    if record.get("history"):
        return list(record["history"])
    earlier = (record.get("init_from") or {}).get("history") or []
    return [*earlier, run_entry(record["step"], record.get("train_s", record.get("wall_s")), record.get("machine"),
                                record.get("started"), record.get("command"))]


def export_history(folder: Path) -> list[dict]:
    """The runs behind an exported folder's weights (``record_history``); a folder exported before records existed
    is read from its card's 'trained' and 'machine' lines, and one without either has no known history."""
    record = read_provenance(folder)
    if record is not None:
        return record_history(record)
    return card_history(folder / "README.md")


_CARD_TRAINED = re.compile(r"^- trained: (\d+) steps.*?, ([\d.]+) min of training.*?started ([^\n]+?)$", re.M | re.S)
_CARD_MACHINE = re.compile(r"^- machine: (.+?)\.?$", re.M)


def card_history(card: Path) -> list[dict]:
    """One run read from a teacher card written before provenance records (its 'trained' and 'machine' facts and
    its last training command); [] when the card is missing or says neither."""
    if not card.is_file():
        return []
    text = card.read_text()
    trained, machine = _CARD_TRAINED.search(text), _CARD_MACHINE.search(text)
    if trained is None:
        return []
    commands = (_card_commands(card) or "").splitlines()
    return [run_entry(int(trained.group(1)), float(trained.group(2)) * 60, machine.group(1) if machine else None,
                      trained.group(3).strip(), commands[-1] if commands else None)]


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
