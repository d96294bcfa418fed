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
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch
from torch import nn

from lab.errors import LatentShapeError, LabError, VideoShapeError
from lab.files import DECODER_FOLDER, check_output_folder, install_folder, remove_owned_files, staged_folder
# Raised by check_save_target; commands and tests import it from here.
from lab.files import FolderNotEmptyError as FolderNotEmptyError

# Written next to the diffusers files of every decoder the lab saves; says which adapter loads it.
LAB_META_FILE = DECODER_FOLDER.marker


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
                hint = (" These may be another VAE's latents (Wan 2.1 has 16 channels, LTX-Video 128); "
                        "pick the decoder that matches them (python -m lab models).")
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
        # Meta tensors (lab.eval.trace) carry shapes only: there are no values to check.
        if not z.is_meta and not torch.isfinite(z).all():
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
    def save(self, folder: str | os.PathLike, overwrite: bool = False) -> Path:
        """Save as a diffusers model folder plus ``lab_decoder.json``, like diffusers' ``save_pretrained``:
        the lab writes its own files into ``folder`` and removes only files it writes (``is_lab_file``).

        ``folder`` may be new, empty, or a decoder the lab saved before (replaced); any other non-empty
        folder is refused (``FolderNotEmptyError``) unless ``overwrite``, which writes the decoder's files
        into it and keeps the folder's other files. The files are written to a temporary folder first
        (``lab.files.staged_folder``, ``install_folder``); a
        folder of lab files only is then swapped with it in one atomic step where the OS can (Linux), so
        an interrupted save leaves the old decoder or the new one, never a missing or half-written one.
        Elsewhere (other files in the folder, or no atomic swap) the files are moved in one by one, the
        marker last: the folder never goes missing, and an interrupted save is repaired by saving again.
        """
        folder = Path(folder)
        check_save_target(folder, overwrite)
        with staged_folder(folder) as tmp:
            self._save_model(tmp)
            meta = {"adapter": self.adapter_kind, "name": self.name, "family": self.family,
                    **self._meta_extra()}
            (tmp / LAB_META_FILE).write_text(json.dumps(meta, indent=2))
            install_folder(tmp, folder, DECODER_FOLDER)
        return folder

    adapter_kind: str = ""
    # The VAE family (lab.arch.Architecture) of teachers and the students built from them; None for
    # decoders of another layout (lightweight), which have no stage map or channel groups.
    arch = None
    # Latent frames per causal call for Wan-family decoders (lab.runtime.chunked.set_chunk); 1 = the
    # reference path. Other decoders ignore it.
    chunk_frames: int = 1
    # The torch.compile mode its modules run under (lab.runtime.compiled.compile_decoder); None = eager.
    compile_mode: str | None = None
    # The fused runtime installed in its model (lab.runtime.fused.set_fused); None = the reference path.
    fused = None

    def _save_model(self, folder: Path) -> None:
        raise NotImplementedError

    def _meta_extra(self) -> dict:
        return {}


# ----- saving into folders the user may own (the rule and the atomic install: lab.files) ----------------------
def is_lab_file(name: str) -> bool:
    """Whether ``name`` is a file that ``VideoDecoder.save`` writes (the only files it replaces or removes)."""
    return DECODER_FOLDER.owns(name)


def is_saved_decoder(folder: str | os.PathLike) -> bool:
    """Whether ``folder`` is a decoder folder written by the lab (its marker: ``lab_decoder.json``)."""
    return DECODER_FOLDER.marks(folder)


def check_save_target(folder: str | os.PathLike, overwrite: bool = False) -> None:
    """Raise unless a decoder may be saved into ``folder``: it is absent, empty, a decoder the lab saved,
    or ``overwrite`` is set. Commands call it before their work, so a refusal comes before minutes of it."""
    check_output_folder(
        folder, overwrite, is_saved_decoder, "output folder",
        f"{folder} is not empty and holds no decoder saved by the lab (no {LAB_META_FILE}); choose a new or "
        f"empty folder, or pass --overwrite to write the decoder's files into it (its other files are kept).")


def remove_saved_decoder(folder: str | os.PathLike) -> None:
    """Remove the files a save wrote in ``folder`` (and the folder, once empty); other files stay."""
    remove_owned_files(folder, DECODER_FOLDER)


class DecoderStream:
    """A causal decoding session: ``push`` latent frames (N, C, k, H, W), get their new frames."""

    def push(self, z_t: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def reset(self) -> None:
        raise NotImplementedError
