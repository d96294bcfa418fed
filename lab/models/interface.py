"""One decoder interface for every decoder in the lab: teachers, students and lightweight decoders.

Contract (the same for all of them):
- ``decode(z)`` takes latents **as the diffusion model produces them** (normalized), NCTHW, and
  returns video as float in [-1, 1], NCTHW. Each decoder undoes its own latent normalization
  (Wan: ``z * std + mean``; LTX-Video: ``z * std / scaling_factor + mean``), so callers never do.
- ``encode(video)`` (teachers only) is the inverse: video in [-1, 1] NCTHW -> normalized latents.
- ``stream()`` (causal decoders only) returns a session that takes one latent frame at a time and
  returns the new output frames; ``decode_stream(z)`` iterates over a whole clip that way.
- Bad input raises :class:`~lab.errors.LatentShapeError` / :class:`~lab.errors.VideoShapeError` with
  the fix in the message; nothing is ever silently reshaped or cast.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch
from torch import nn

from lab.errors import LatentShapeError, LabError, VideoShapeError

# Written next to the diffusers files of every decoder the lab saves; says which adapter loads it.
LAB_META_FILE = "lab_decoder.json"


@dataclass(frozen=True)
class LatentGeometry:
    """How a decoder's latents map to video.

    ``compression`` is (t, h, w). Causal video VAEs keep the first frame on its own: T latent
    frames decode to ``1 + t * (T - 1)`` frames (Wan 2.1: 21 -> 81, LTX-Video: 21 -> 161).
    """

    channels: int
    compression: tuple[int, int, int]

    @property
    def t(self) -> int:
        return self.compression[0]

    @property
    def spatial(self) -> int:
        return self.compression[1]

    def frames_for(self, latent_frames: int) -> int:
        return 1 + self.t * (latent_frames - 1)

    def latent_frames_for(self, frames: int) -> int:
        if frames < 1 or (frames - 1) % self.t:
            raise VideoShapeError(
                f"a clip of {frames} frames cannot be encoded: this VAE needs 1 + {self.t}k frames "
                f"(e.g. {self.nearest_frames(frames)}). Trim the clip, or read it with "
                f"lab.data.video.fit_clip(..., frames={self.nearest_frames(frames)})."
            )
        return 1 + (frames - 1) // self.t

    def nearest_frames(self, frames: int) -> int:
        """The largest valid frame count <= frames (at least 1)."""
        return 1 + max(0, (frames - 1) // self.t) * self.t

    def latent_size_for(self, height: int, width: int) -> tuple[int, int]:
        s = self.spatial
        if height % s or width % s or height < s or width < s:
            raise VideoShapeError(
                f"a {height}x{width} video cannot be encoded: height and width must be positive multiples "
                f"of {s} (e.g. {max(s, height // s * s)}x{max(s, width // s * s)}). Resize or crop it, "
                f"e.g. with lab.data.video.fit_clip(..., size=({max(s, height // s * s)}, {max(s, width // s * s)}))."
            )
        return height // s, width // s


class VideoDecoder(nn.Module):
    """Base class of every decoder adapter. Subclasses implement ``_decode_raw`` (and, when they
    can, ``_encode_raw`` and ``stream``); this class owns validation and normalization."""

    #: "teacher", "student" or "lightweight"
    family: str = "teacher"
    #: True when output frame f depends only on latent frames <= its own (supports ``stream()``)
    causal: bool = False

    def __init__(self, name: str, geometry: LatentGeometry, latents_mean=None, latents_std=None,
                 scaling_factor: float = 1.0):
        super().__init__()
        self.name = name
        self.geometry = geometry
        c = geometry.channels
        mean = torch.zeros(c) if latents_mean is None else torch.as_tensor(latents_mean, dtype=torch.float32)
        std = torch.ones(c) if latents_std is None else torch.as_tensor(latents_std, dtype=torch.float32)
        if mean.numel() != c or std.numel() != c:
            raise LabError(f"{name}: latents_mean/std have {mean.numel()}/{std.numel()} entries, expected {c}")
        # Non-persistent: they come from the model's config, not from its weights.
        self.register_buffer("latents_mean", mean.view(1, c, 1, 1, 1), persistent=False)
        self.register_buffer("latents_std", std.view(1, c, 1, 1, 1), persistent=False)
        self.scaling_factor = float(scaling_factor)

    # ----- what subclasses provide -------------------------------------------------------------
    def _decode_raw(self, z: torch.Tensor) -> torch.Tensor:
        """Raw (denormalized) latents -> video, unclamped."""
        raise NotImplementedError

    def _encode_raw(self, video: torch.Tensor, sample: bool, generator) -> torch.Tensor:
        raise LabError(f"{self.name} is a decoder only: it has no encoder. Encode with its teacher "
                       f"(e.g. lab.models.load_decoder('{self.teacher_name or 'wan2.1'}').encode(video)).")

    def decoder_modules(self) -> list[nn.Module]:
        """The modules that make up the decoder (what pruning, profiling and hooks look at)."""
        raise NotImplementedError

    @property
    def has_encoder(self) -> bool:
        return False

    @property
    def teacher_name(self) -> str | None:
        return None

    # ----- shared behaviour --------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    def decoder_params(self) -> int:
        return sum(p.numel() for m in self.decoder_modules() for p in m.parameters())

    def denormalize(self, z: torch.Tensor) -> torch.Tensor:
        mean = self.latents_mean.to(z.device, z.dtype)
        std = self.latents_std.to(z.device, z.dtype)
        return z * std / self.scaling_factor + mean

    def normalize(self, z: torch.Tensor) -> torch.Tensor:
        mean = self.latents_mean.to(z.device, z.dtype)
        std = self.latents_std.to(z.device, z.dtype)
        return (z - mean) * self.scaling_factor / std

    def check_latents(self, z) -> None:
        c = self.geometry.channels
        if not torch.is_tensor(z):
            raise LatentShapeError(f"{self.name} expects latents as a torch.Tensor, got {type(z).__name__}.")
        if z.ndim != 5:
            hint = {
                4: " 4-D input looks like image latents (N,C,H,W): add a time axis with z.unsqueeze(2).",
                3: " 3-D input has no batch and no time axis: use z[None, :, None].",
            }.get(z.ndim, "")
            raise LatentShapeError(
                f"{self.name} expects 5-D latents (N, C={c}, T, H, W), got shape {tuple(z.shape)}.{hint}"
            )
        if z.shape[1] != c:
            hint = ""
            if z.shape[2] == c:
                hint = " The channels are on axis 2: these look like N,T,C,H,W; use z.permute(0, 2, 1, 3, 4)."
            else:
                hint = (f" These may be another VAE's latents (Wan 2.1 has 16 channels, LTX-Video 128); "
                        f"pick the decoder that matches them (python -m lab models).")
            raise LatentShapeError(f"{self.name} decodes {c}-channel latents, got {z.shape[1]} channels "
                                   f"(shape {tuple(z.shape)}).{hint}")
        if min(z.shape) < 1:
            raise LatentShapeError(f"{self.name}: latents have an empty axis (shape {tuple(z.shape)}).")
        if not z.is_floating_point():
            raise LatentShapeError(f"{self.name}: latents must be floating point, got {z.dtype}.")
        if z.device != self.device:
            raise LatentShapeError(f"{self.name}: latents are on {z.device} but the decoder is on {self.device}; "
                                   f"move one of them (z.to('{self.device}') or decoder.to('{z.device}')).")
        if z.dtype != self.dtype:
            raise LatentShapeError(f"{self.name}: latents are {z.dtype} but the decoder runs in {self.dtype}; "
                                   f"cast one of them (z.to({self.dtype}) or decoder.to({z.dtype})).")
        if not torch.isfinite(z).all():
            raise LatentShapeError(f"{self.name}: latents contain NaN or inf values; check the sampler output.")

    def check_video(self, video) -> None:
        if not torch.is_tensor(video) or video.ndim != 5 or video.shape[1] != 3:
            shape = tuple(video.shape) if torch.is_tensor(video) else type(video).__name__
            raise VideoShapeError(f"{self.name} encodes RGB video as a 5-D tensor (N, 3, T, H, W) in [-1, 1], "
                                  f"got {shape}. lab.data.video.to_tensor() makes one from decoded frames.")
        self.geometry.latent_frames_for(video.shape[2])
        self.geometry.latent_size_for(video.shape[3], video.shape[4])
        if video.device != self.device or video.dtype != self.dtype:
            raise VideoShapeError(f"{self.name}: video is {video.dtype} on {video.device}, the model is "
                                  f"{self.dtype} on {self.device}; move/cast one of them.")

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Normalized latents (N, C, T, H, W) -> video in [-1, 1] (N, 3, 1 + t(T-1), sH, sW)."""
        self.check_latents(z)
        return self._decode_raw(self.denormalize(z)).clamp(-1.0, 1.0)

    def decode_with_grad(self, z: torch.Tensor) -> torch.Tensor:
        """Like ``decode`` but differentiable and unclamped, for training students."""
        self.check_latents(z)
        return self._decode_raw(self.denormalize(z))

    @torch.no_grad()
    def encode(self, video: torch.Tensor, sample: bool = False, generator=None) -> torch.Tensor:
        """Video in [-1, 1] (N, 3, T, H, W) -> normalized latents. ``sample=False`` takes the
        posterior mode, which is what reconstruction metrics use."""
        self.check_video(video)
        return self.normalize(self._encode_raw(video, sample, generator))

    def stream(self) -> "DecoderStream":
        raise LabError(f"{self.name} is not a causal decoder, so it cannot decode one latent frame at a time. "
                       f"Decode whole clips with decode(z).")

    @torch.no_grad()
    def decode_stream(self, z: torch.Tensor) -> Iterator[torch.Tensor]:
        """Decode a whole clip one latent frame at a time, yielding the new frames of each step.
        Concatenated along time, the chunks equal ``decode(z)``."""
        self.check_latents(z)
        session = self.stream()
        for t in range(z.shape[2]):
            yield session.push(z[:, :, t:t + 1])

    def describe(self) -> dict:
        """What ``python -m lab models --json`` prints about this decoder."""
        return {
            "name": self.name,
            "family": self.family,
            "latent_channels": self.geometry.channels,
            "compression": list(self.geometry.compression),
            "decoder_params": self.decoder_params(),
            "causal": self.causal,
        }

    # ----- persistence -------------------------------------------------------------------------
    def save(self, folder: str | os.PathLike) -> Path:
        """Save as a diffusers model folder plus ``lab_decoder.json``; written to a temporary folder
        first and renamed into place, so an interrupted save never leaves a half-written model."""
        folder = Path(folder)
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
        tmp.chmod(0o755)  # mkdtemp makes it private; a saved model is an ordinary shared folder
        try:
            self._save_model(tmp)
            meta = {"adapter": self.adapter_kind, "name": self.name, "family": self.family,
                    **self._meta_extra()}
            (tmp / LAB_META_FILE).write_text(json.dumps(meta, indent=2))
            if folder.exists():
                old = folder.with_name(f".{folder.name}.old")
                if old.exists():
                    shutil.rmtree(old)
                folder.rename(old)
                tmp.rename(folder)
                shutil.rmtree(old)
            else:
                tmp.rename(folder)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return folder

    adapter_kind: str = ""
    # Latent frames per causal call for Wan-family decoders (lab.runtime.chunked.set_chunk); 1 = the
    # reference path. Other decoders ignore it.
    chunk_frames: int = 1
    # The torch.compile mode its modules run under (lab.runtime.compiled.compile_decoder); None = eager.
    compile_mode: str | None = None

    def _save_model(self, folder: Path) -> None:
        raise NotImplementedError

    def _meta_extra(self) -> dict:
        return {}


class DecoderStream:
    """A causal decoding session: ``push`` latent frames (N, C, k, H, W), get their new frames."""

    def push(self, z_t: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def reset(self) -> None:
        raise NotImplementedError
