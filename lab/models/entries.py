"""How families declare their catalog entries (timm's registries of named variants, with weights as data):
teachers (diffusers classes at a config, with their default weights), the students the lab ships in
data/checkpoints, and the Flash-VAED student architecture of a full-size teacher built from config."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch

from lab import paths
from lab.errors import ConfigError, WeightsNotFoundError
from lab.models.registry import ModelEntry, load_saved, register
from lab.models.weights import count_params, load_diffusers_model


def _teacher_loader(name, cls, adapter, config, *, hub=None, checkpoint: str | None = None, hub_by_default: bool = True):
    def loader(weights=None, device=None, dtype=None):
        if weights is None and checkpoint is not None:
            folder = paths.checkpoints_dir() / checkpoint
            if not (folder / "config.json").exists():
                raise WeightsNotFoundError(
                    f"{name}: the trained weights are missing ({folder}/config.json and "
                    f"diffusion_pytorch_model.safetensors). They ship with the repository; restore them with "
                    f"git checkout -- {Path('data/checkpoints') / checkpoint}, train new ones with "
                    f"python -m lab teacher train --model {name}, or pass --weights random.")
            weights = str(folder)
        if weights is None and hub is not None and hub_by_default:
            weights = hub[0]
        if weights is None:
            weights = "random"
        vae = load_diffusers_model(cls, weights, config=config, hub_subfolder=hub[1] if hub else None,
                                   what=f"{name} ({cls.__name__})", device=device, dtype=dtype)
        return adapter(name, vae)
    return loader


def register_teacher(name: str, cls, adapter, config: dict, *, channels: int, compression: tuple[int, int, int],
                     weights_text: str, description: str, decoder_parts: tuple[str, ...] = ("decoder",), tags=(),
                     hub: tuple[str, str] | None = None, checkpoint: str | None = None,
                     hub_by_default: bool = True) -> ModelEntry:
    """A teacher: ``cls(**config)`` behind ``adapter``. Its default weights: ``data/checkpoints/<checkpoint>``,
    else the ``hub`` (repo, subfolder) when ``hub_by_default``, else random. ``decoder_parts``: the VAE's
    attributes counted as its decoder."""
    return register(ModelEntry(
        name=name, family="teacher", latent_channels=channels, compression=compression, weights=weights_text,
        loader=_teacher_loader(name, cls, adapter, config, hub=hub, checkpoint=checkpoint,
                               hub_by_default=hub_by_default),
        param_counter=lambda: count_params(cls, config, list(decoder_parts)),
        description=description, tags=tuple(tags)))


def register_shipped_student(name: str, description: str, channels: int = 16,
                         compression: tuple[int, int, int] = (4, 8, 8)) -> None:
    folder = paths.checkpoints_dir() / name
    if not (folder / "config.json").exists():
        return  # not shipped in this checkout: nothing to list

    def load(weights=None, device=None, dtype=None):
        if weights == "random":
            raise ConfigError(f"{name} is a trained student; there is no random version of it. Build a fresh "
                              f"student from its teacher with python -m lab prune (or distill), or pass a folder.")
        src = Path(weights).expanduser() if weights else folder
        if not src.is_dir():
            raise WeightsNotFoundError(f"{name}: {src} is not a saved student folder (lab_decoder.json + config.json "
                                       f"+ safetensors, as python -m lab distill writes to RUN/best or RUN/last).")
        dec = load_saved(src, device=device, dtype=dtype)
        dec.name = name
        return dec

    register(ModelEntry(
        name=name, family="student", latent_channels=channels, compression=compression,
        weights=f"data/checkpoints/{name} (distilled by the lab)", loader=load,
        param_counter=lambda: load().decoder_params(), description=description, tags=("mini",),
        random_weights=False))




def register_flash_student(teacher: str, cls, config: dict, build_vae: Callable, adapter, *, channels: int,
                           compression: tuple[int, int, int], what: str) -> ModelEntry:
    """``TEACHER-flash``: the Flash-VAED student architecture of a full-size teacher, built from config (the
    authors' widths and operators; channel choice does not change speed): what the lab times and traces
    against the teacher. ``build_vae(teacher, skeleton)`` makes the student model from the teacher's
    (meta-device) skeleton; ``--weights FOLDER`` loads a saved student of that teacher instead."""
    name = f"{teacher}-flash"

    def load(weights=None, device=None, dtype=None):
        if weights not in (None, "random"):
            dec = load_saved(Path(weights).expanduser(), device=device, dtype=dtype)
            if getattr(dec, "teacher_name", None) != teacher:
                raise WeightsNotFoundError(f"{name}: {weights} holds {dec.name} (a student of "
                                           f"{getattr(dec, 'teacher_name', None) or 'no teacher'}), not a student of "
                                           f"{teacher}; load it by its folder instead.")
            return dec
        with torch.device("meta"):
            skeleton = cls(**config)
        dec = adapter(name, build_vae(teacher, skeleton))
        return dec.to(device=device, dtype=dtype) if (device or dtype) else dec

    def params() -> int:
        with torch.device("meta"):
            return load().decoder_params()

    return register(ModelEntry(
        name=name, family="student", latent_channels=channels, compression=compression,
        weights=f"random (the architecture, for speed work); or --weights FOLDER (a saved student of {teacher})",
        loader=load, param_counter=params,
        description=f"the Flash-VAED student architecture of {what}, built from config: what the lab times and "
                    f"traces against the teacher"))
