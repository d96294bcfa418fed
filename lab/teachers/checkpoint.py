"""Reading a teacher run's training state, for what reads a run without training it (export, warm start) and for
the resume of runs from before checkpoint folders. The training loop writes the checkpoints
(``lab.training.loop``, ``lab.teachers.train.TeacherTask.state_dict``): ``<run>/checkpoints/step-NNNNNNN/`` with
the VAE's weights as ``model.*`` tensors in safetensors and the rest of the training state in a weights_only-
loadable file (optimizer, step, training time, RNG, the run's config as a dict, the session metadata the card
quotes).

Runs made before teacher runs shared this format kept one ``<run>/state.pt``; ``load_state`` still reads it (resume,
warm start, export), and the next checkpoint of a resumed one is written the new way.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import torch

from lab.errors import CheckpointError
from lab.training.checkpoints import CheckpointFolder

#: A run folder's state from before teacher checkpoints were step folders (still read, never written).
LEGACY_STATE_FILE = "state.pt"
#: What a readable teacher checkpoint's state must hold.
STATE_KEYS = ("step", "optimizer", "config")
MODEL = "model."
#: the exponential moving average of the weights (``--ema``), beside ``model.*``
EMA = "ema."


def checkpoint_folder(run_dir: Path) -> CheckpointFolder:
    return CheckpointFolder(run_dir, STATE_KEYS, weights_prefix=MODEL)


def is_teacher_run(folder: Path) -> bool:
    """Whether ``folder`` holds a teacher run's training state (a checkpoint, or a legacy state.pt)."""
    return bool(checkpoint_folder(folder).complete()) or (Path(folder) / LEGACY_STATE_FILE).is_file()


def shipped_weights(state: dict) -> dict:
    """The weights a run's state ships (exports, warm starts): its moving average with ``--ema``, else the model's."""
    return state.get("ema") or state["model"]


def load_state(run_dir: Path) -> dict | None:
    """The run's newest readable training state (``model`` holds the state dict, ``ema`` its moving average with
    ``--ema``, else empty), or None when it has none yet. A
    checkpoint that cannot be read is skipped and left where it is (this reads another run's folder)."""
    run_dir = Path(run_dir)
    ckpts = checkpoint_folder(run_dir)
    picked = ckpts.pick("cpu", set_aside=False)
    if picked is not None:
        _, tensors, state = picked
        return {**state, "model": {k[len(MODEL):]: v for k, v in tensors.items() if k.startswith(MODEL)},
                "ema": {k[len(EMA):]: v for k, v in tensors.items() if k.startswith(EMA)}}
    if (run_dir / LEGACY_STATE_FILE).is_file():
        return load_legacy(run_dir / LEGACY_STATE_FILE)
    if ckpts.complete():
        raise CheckpointError(f"no checkpoint in {ckpts.dir} can be read; they are damaged. Point --run at "
                              f"another run.")
    return None


def load_legacy(path: Path) -> dict:
    """A pre-checkpoint-folder run's ``state.pt`` (read without unpickling code)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(f"{path} holds objects other than tensors and plain containers, so it is not "
                              f"loaded (that would run pickled code; {exc}). Re-create the run, or if you trust "
                              f"the file, re-save it with only tensors and dicts.") from exc
    except Exception as exc:
        raise CheckpointError(f"cannot read the training state {path} ({type(exc).__name__}: {exc}); it is "
                              f"damaged. Delete it to start the run over, or point --run at another run.") from exc
