"""Where a diffusers model's weights come from: a hub id, a local folder, a single checkpoint file,
or ``random`` (the real architecture with random weights, for speed work).

Every path that could download also accepts a local file, and when nothing can be loaded the
error says which file is missing and how to supply it.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import torch

from lab.errors import CheckpointError, WeightsNotFoundError

SINGLE_FILE_SUFFIXES = (".safetensors", ".pth", ".pt", ".ckpt", ".bin")


def looks_like_path(source: str) -> bool:
    return (os.sep in source and not _is_hub_id(source)) or source.startswith((".", "~")) or \
        source.endswith(SINGLE_FILE_SUFFIXES) or Path(source).expanduser().exists()


def _is_hub_id(source: str) -> bool:
    # "org/name" with exactly one slash and no filesystem meaning.
    parts = source.split("/")
    return len(parts) == 2 and all(parts) and not source.startswith((".", "/", "~")) \
        and not Path(source).exists()


def build_random(cls, config: dict, device=None, dtype=None):
    """The real architecture with random weights (seeded by the caller's torch RNG)."""
    return place(cls(**config), device, dtype)


def place(model, device=None, dtype=None):
    """Move/cast only when needed: diffusers warns on every ``.to(dtype)``, even a no-op one."""
    if device is not None:
        model = model.to(device)
    if dtype is not None and dtype != next(model.parameters()).dtype:
        model = model.to(dtype)
    return model


def count_params(cls, config: dict, part: str | list[str]) -> int:
    """Parameter count of ``part`` (attribute names) of ``cls(**config)``, built on the meta device
    so that listing full-size models costs no memory and little time."""
    parts = [part] if isinstance(part, str) else part
    with torch.device("meta"):
        model = cls(**config)
    return sum(p.numel() for name in parts for p in getattr(model, name).parameters())


def load_diffusers_model(cls, source: str, *, config: dict, hub_subfolder: str | None,
                         what: str, device=None, dtype=None):
    """Load ``cls`` (a diffusers ModelMixin) from ``source``.

    - ``random``: ``cls(**config)`` with random weights;
    - a folder with ``config.json`` (or with a ``vae/`` subfolder, as a pipeline folder has);
    - a single original checkpoint file (``from_single_file``; the architecture comes from
      ``config``, so no hub access is needed);
    - a hub id (``org/name``): ``from_pretrained`` (uses the local Hugging Face cache when offline).
    """
    if source == "random":
        return build_random(cls, config, device, dtype)
    path = Path(source).expanduser()
    try:
        if path.is_dir():
            sub = None
            if not (path / "config.json").exists() and (path / "vae" / "config.json").exists():
                sub = "vae"
            elif not (path / "config.json").exists():
                raise WeightsNotFoundError(
                    f"{path} has no config.json (nor vae/config.json): it is not a diffusers model folder. "
                    f"A {what} folder holds config.json and diffusion_pytorch_model.safetensors, as written by "
                    f"save_pretrained() or downloaded from the hub; pass a single checkpoint file instead, "
                    f"or --weights random for the architecture with random weights.")
            model = cls.from_pretrained(str(path), subfolder=sub)
        elif path.suffix in SINGLE_FILE_SUFFIXES or path.is_file():
            if not path.is_file():
                raise WeightsNotFoundError(
                    f"weights file {path} does not exist. Pass the path to the {what} checkpoint "
                    f"(.safetensors or .pth), a diffusers folder, a hub id, or 'random'.")
            model = _from_single_file(cls, path, config)
        elif _is_hub_id(source):
            model = _from_hub(cls, source, hub_subfolder, what)
        else:
            raise WeightsNotFoundError(
                f"cannot find {what} weights at '{source}': it is neither an existing file or folder nor a hub id "
                f"(org/name). Pass a diffusers folder, a .safetensors/.pth checkpoint, a hub id, or 'random'.")
    except (WeightsNotFoundError, CheckpointError):
        raise
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        raise CheckpointError(
            f"could not load {what} weights from '{source}': {type(exc).__name__}: {_first_line(exc)}. "
            f"The file may be corrupted or belong to another model; check it, or use --weights random "
            f"for the architecture with random weights.") from exc
    return place(model, device, dtype)


def _from_hub(cls, repo_id: str, subfolder: str | None, what: str):
    try:
        return cls.from_pretrained(repo_id, subfolder=subfolder)
    except Exception as exc:  # network errors, missing repos, gated repos: all mean the same to the user
        where = f"{repo_id} (subfolder '{subfolder}')" if subfolder else repo_id
        raise WeightsNotFoundError(
            f"could not get {what} weights from the Hugging Face hub: {where} "
            f"({type(exc).__name__}: {_first_line(exc)}). This machine may be offline. Download "
            f"diffusion_pytorch_model.safetensors and config.json of {where} on a machine with access and pass "
            f"the folder (--weights /path/to/vae), or pass the original single checkpoint file "
            f"(--weights /path/to/vae.safetensors), or --weights random for speed work.") from exc


def _from_single_file(cls, path: Path, config: dict):
    # from_single_file needs the architecture's config; give it ours so it never asks the hub.
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "config.json").write_text(json.dumps({"_class_name": cls.__name__, **config}))
        try:
            return cls.from_single_file(str(path), config=tmp, local_files_only=True)
        except Exception as exc:
            raise CheckpointError(
                f"could not load the single-file checkpoint {path}: {type(exc).__name__}: {_first_line(exc)}. "
                f"It may be corrupted, or be a checkpoint of another model; original {cls.__name__} checkpoints "
                f"and diffusers-format state dicts are accepted.") from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else ""
