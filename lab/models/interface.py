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

import errno
import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch
from torch import nn

from lab.errors import LatentShapeError, LabError, VideoShapeError
from lab.files import ordinary_permissions
from lab.pids import pid_alive

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
        into it and keeps the folder's other files. The files are written to a temporary folder first; a
        folder of lab files only is then swapped with it in one atomic step where the OS can (Linux), so
        an interrupted save leaves the old decoder or the new one, never a missing or half-written one.
        Elsewhere (other files in the folder, or no atomic swap) the files are moved in one by one, the
        marker last: the folder never goes missing, and an interrupted save is repaired by saving again.
        """
        folder = Path(folder)
        check_save_target(folder, overwrite)
        folder.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_temps(folder)
        tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}{_TMP_TAG}{os.getpid()}-", dir=folder.parent))
        try:
            self._save_model(tmp)
            meta = {"adapter": self.adapter_kind, "name": self.name, "family": self.family,
                    **self._meta_extra()}
            (tmp / LAB_META_FILE).write_text(json.dumps(meta, indent=2))
            # mkdtemp's folder is private, and diffusers writes its weights file private too; a saved model
            # is an ordinary folder of the user's, readable as their other files are.
            ordinary_permissions(tmp)
            _install(tmp, folder)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)  # after a swap it holds the previous decoder
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


# ----- saving into folders the user may own ----------------------------------------------------------
class FolderNotEmptyError(LabError, FileExistsError):
    """A target folder that holds files the lab did not write; the lab refuses to replace them."""


# Temporary folders of a save are named ``.<name>.lab-tmp-<pid>-<random>`` next to the target, so a stale
# one (its process is gone) is recognised and removed by the next save to the same target.
_TMP_TAG = ".lab-tmp-"
_WEIGHTS_PREFIX = "diffusion_pytorch_model"


def is_lab_file(name: str) -> bool:
    """Whether ``name`` is a file that ``VideoDecoder.save`` writes (the only files it replaces or removes)."""
    return (name in (LAB_META_FILE, "config.json") or
            name.startswith(_WEIGHTS_PREFIX) and name.endswith((".safetensors", ".safetensors.index.json")))


def is_saved_decoder(folder: str | os.PathLike) -> bool:
    """Whether ``folder`` is a decoder folder written by the lab (its marker: ``lab_decoder.json``)."""
    return (Path(folder) / LAB_META_FILE).is_file()


def check_save_target(folder: str | os.PathLike, overwrite: bool = False) -> None:
    """Raise unless a decoder may be saved into ``folder``: it is absent, empty, a decoder the lab saved,
    or ``overwrite`` is set. Commands call it before their work, so a refusal comes before minutes of it."""
    check_output_folder(
        folder, overwrite, is_saved_decoder, "output folder",
        f"{folder} is not empty and holds no decoder saved by the lab (no {LAB_META_FILE}); choose a new or "
        f"empty folder, or pass --overwrite to write the decoder's files into it (its other files are kept).")


def check_output_folder(folder: str | os.PathLike, overwrite: bool, ours, what: str, refusal: str) -> None:
    """The folder rule of everything the lab writes into a folder: allowed when ``folder`` is absent, empty,
    written by the lab before (``ours(folder)``) or ``overwrite`` is set; a file there is refused (``what``
    names the option to change), any other non-empty folder refused with ``refusal``."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise FolderNotEmptyError(f"{folder} is a file, not a folder; choose another {what}.")
    if overwrite or not folder.exists() or not any(folder.iterdir()) or ours(folder):
        return
    raise FolderNotEmptyError(refusal)


def remove_saved_decoder(folder: str | os.PathLike) -> None:
    """Remove the files a save wrote in ``folder`` (and the folder, once empty); other files stay."""
    folder = Path(folder)
    if not folder.is_dir():
        return
    for p in folder.iterdir():
        if p.is_file() and is_lab_file(p.name):
            p.unlink()
    if not any(folder.iterdir()):
        folder.rmdir()


def _install(tmp: Path, folder: Path) -> None:
    """Put the saved files of ``tmp`` at ``folder``."""
    if not folder.exists():
        os.rename(tmp, folder)
        return
    entries = os.listdir(folder)
    if not entries:
        try:
            os.rename(tmp, folder)  # POSIX renames onto an empty folder in one step
            return
        except OSError:
            pass
    elif all(is_lab_file(e) and (folder / e).is_file() for e in entries) and exchange_paths(tmp, folder):
        return  # a folder of our files only: swapped whole, in one step
    _merge(tmp, folder)


def _merge(tmp: Path, folder: Path) -> None:
    """Move the saved files into ``folder`` one by one, the marker last (where a whole-folder swap is not
    possible: other files live in the folder, or the OS cannot swap). Interrupted, it leaves the folder
    with some new and some old files; saving again repairs it. Files of an earlier save that this one did
    not write (e.g. other weight shards) are removed; the folder's other files are kept."""
    written = sorted(os.listdir(tmp), key=lambda n: n == LAB_META_FILE)
    for name in written:
        os.replace(tmp / name, folder / name)
    for p in folder.iterdir():
        if p.name not in written and p.is_file() and is_lab_file(p.name) and p.name != LAB_META_FILE:
            p.unlink()


def _remove_stale_temps(folder: Path) -> None:
    """Remove temporary folders of earlier saves to ``folder`` whose process is gone (it was killed)."""
    prefix = f".{folder.name}{_TMP_TAG}"
    if not folder.parent.is_dir():
        return
    for p in folder.parent.iterdir():
        pid = p.name[len(prefix):].split("-", 1)[0] if p.name.startswith(prefix) else ""
        if pid.isdigit() and p.is_dir() and not pid_alive(int(pid)):
            shutil.rmtree(p, ignore_errors=True)


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _renameat2():
    try:
        import ctypes  # deferred: ctypes and renameat2 are optional; Linux only, see _RENAMEAT2
        fn = ctypes.CDLL(None, use_errno=True).renameat2  # glibc >= 2.28
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn


_RENAMEAT2 = _renameat2() if sys.platform.startswith("linux") else None


def exchange_paths(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Swap two existing paths in one atomic step (Linux ``renameat2(RENAME_EXCHANGE)``): no moment where
    either is missing. Returns False where the OS or the filesystem cannot, so the caller falls back."""
    if _RENAMEAT2 is None:
        return False
    import ctypes  # deferred: ctypes and renameat2 are optional; Linux only, see _RENAMEAT2
    if _RENAMEAT2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EXDEV):
        return False
    raise OSError(err, os.strerror(err), str(b))


class DecoderStream:
    """A causal decoding session: ``push`` latent frames (N, C, k, H, W), get their new frames."""

    def push(self, z_t: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def reset(self) -> None:
        raise NotImplementedError
