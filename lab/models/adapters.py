"""The base of every teacher adapter over one diffusers-style VAE: each VAE family (lab/families) subclasses
it for its own class, latent geometry, normalisation and decoding. The lab never re-implements these
models; it wraps them behind :class:`VideoDecoder` so that every other part of the lab (analysis, pruning,
profiling, distillation, evaluation) sees one interface."""

from __future__ import annotations

from pathlib import Path

from lab.models.interface import LatentGeometry, VideoDecoder


class VAETeacherAdapter(VideoDecoder):
    """Base of the teacher adapters over one diffusers-style VAE (Wan, LTX-Video, LTX-2, TAEF2), held as
    ``self.vae``. Subclasses set ``vae_class`` (what ``from_saved`` reloads) and pass their latent geometry
    and normalization up; saved folders are the VAE's own diffusers folder."""

    vae_class: type = None

    def __init__(self, name: str, vae, family: str, geometry: LatentGeometry, latents_mean=None,
                 latents_std=None, scaling_factor: float = 1.0):
        super().__init__(name, geometry, latents_mean, latents_std, scaling_factor)
        self.family = family
        self.vae = vae

    @property
    def has_encoder(self) -> bool:
        return self.vae.encoder is not None

    def _save_model(self, folder: Path) -> None:
        self.vae.save_pretrained(folder, safe_serialization=True)

    @classmethod
    def from_saved(cls, folder: Path, meta: dict) -> "VAETeacherAdapter":
        return cls(meta["name"], cls.vae_class.from_pretrained(str(folder)), meta.get("family", "teacher"))
