"""TAEF2's catalog entry (madebyollin/taesd, MIT): a real image decoder trained at scale by someone else, decoded
frame by frame. Its weights are not shipped: a folder holding taef2_decoder.pth and taef2_encoder.pth
(../shared/assets/weights/taef2 where present), or random weights."""

from __future__ import annotations

from pathlib import Path

from lab import paths
from lab.errors import WeightsNotFoundError
from lab.families.taef2.adapters import TAEF2DecoderAdapter
from lab.families.taef2.model import TAEF2Model, load_released
from lab.models.registry import ModelEntry, register


def _taef2_folder() -> Path | None:
    shared = paths.shared_assets_dir()
    return shared / "weights" / "taef2" if shared is not None and (shared / "weights" / "taef2").is_dir() else None


def _load_taef2(weights=None, device=None, dtype=None):
    if weights == "random":
        vae = TAEF2Model()
    else:
        folder = weights or _taef2_folder()
        if folder is None:
            raise WeightsNotFoundError("taef2: no weights here; pass --weights FOLDER holding taef2_decoder.pth and "
                                       "taef2_encoder.pth (madebyollin/taesd on GitHub, MIT), or --weights random.")
        vae = load_released(folder)
    dec = TAEF2DecoderAdapter("taef2", vae)
    return dec.to(device=device, dtype=dtype) if (device or dtype) else dec


register(ModelEntry(
    name="taef2", family="teacher", latent_channels=32, compression=(1, 8, 8),
    weights="--weights FOLDER (taef2_decoder.pth + taef2_encoder.pth, madebyollin/taesd); ../shared/assets/"
            "weights/taef2 where present; or --weights random",
    loader=_load_taef2, param_counter=lambda: sum(p.numel() for p in TAEF2Model(with_encoder=False).parameters()),
    description="TAEF2, the tiny FLUX.2 image autoencoder (TAESD layout, 32 channels at /8), decoded frame by "
                "frame; a real decoder trained by someone else", tags=("real",)))
