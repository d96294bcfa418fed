"""Lightweight decoders behind the lab's decoder interface (``VideoDecoder``), so bench, eval, the
apps and the distillation trainer treat them like any decoder.

They decode **normalized** latents directly (they are trained on what the teacher's ``encode``
returns), so their own latent normalization is the identity. Saved as a diffusers model folder
(``config.json`` + ``diffusion_pytorch_model.safetensors``) plus ``lab_decoder.json``.
"""

from __future__ import annotations

from pathlib import Path

import torch

from lab.errors import CheckpointError, LabError
from lab.models.interface import DecoderStream, LatentGeometry, VideoDecoder
from lab.models.lightweight.effvit import EfficientViTVideoDecoder
from lab.models.lightweight.tae import TinyVideoDecoder

MODEL_CLASSES = {cls.__name__: cls for cls in (TinyVideoDecoder, EfficientViTVideoDecoder)}


def geometry_of(model) -> LatentGeometry:
    c = model.config
    s = model.spatial_compression
    return LatentGeometry(c.latent_channels, (c.temporal_compression, s, s))


class LightweightAdapter(VideoDecoder):
    family = "lightweight"
    adapter_kind = "lightweight"

    def __init__(self, name: str, model):
        super().__init__(name, geometry_of(model))
        self.model = model
        self.causal = bool(model.causal)

    @property
    def teacher_name(self) -> str | None:
        return self.model.config.teacher or None

    def decoder_modules(self):
        return [self.model]

    def stage_map(self) -> dict:
        """Stage name -> modules (conv_in, mid, up0..upN, head), as the model lays them out."""
        return self.model.stage_map()

    def _decode_raw(self, z: torch.Tensor) -> torch.Tensor:
        return self.model(z)

    def stream(self) -> "LightweightStream":
        if not self.causal:
            super().stream()  # raises: not causal
        return LightweightStream(self)

    def describe(self) -> dict:
        c = self.model.config
        return {**super().describe(), "architecture": c.architecture, "teacher": c.teacher or None}

    def _save_model(self, folder: Path) -> None:
        self.model.save_pretrained(folder, safe_serialization=True)

    def _meta_extra(self) -> dict:
        return {"model_class": type(self.model).__name__, "teacher": self.model.config.teacher,
                "architecture": self.model.config.architecture}

    @classmethod
    def from_saved(cls, folder: Path, meta: dict) -> "LightweightAdapter":
        kind = meta.get("model_class")
        if kind not in MODEL_CLASSES:
            raise CheckpointError(f"{folder}: lab_decoder.json names model_class {kind!r}; lightweight decoders "
                                  f"are {', '.join(MODEL_CLASSES)}. Re-save the decoder with this lab.")
        # Shipped folders store fp16 to stay small; load in float32 (the dtype=... of load_decoder casts after).
        model = MODEL_CLASSES[kind].from_pretrained(str(folder), low_cpu_mem_usage=False, torch_dtype=torch.float32)
        return cls(meta["name"], model)


class LightweightStream(DecoderStream):
    """Causal session: the first latent frame gives 1 frame, each later one t frames."""

    def __init__(self, decoder: LightweightAdapter):
        self.decoder = decoder
        self.reset()

    def reset(self) -> None:
        self._first = True

    @torch.no_grad()
    def push(self, z_t: torch.Tensor) -> torch.Tensor:
        d = self.decoder
        d.check_latents(z_t)
        if z_t.shape[2] != 1:
            raise LabError(f"{d.name}: push one latent frame at a time (shape N, C, 1, H, W), got {tuple(z_t.shape)}")
        out = d.model(d.denormalize(z_t), first_chunk=self._first).clamp(-1.0, 1.0)
        self._first = False
        return out
