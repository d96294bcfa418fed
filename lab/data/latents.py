"""Latent files: load saved latents (no pickles executed), save them as safetensors."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from lab.errors import LatentShapeError, VideoReadError
from lab.files import atomic_path


def load_latents(path: str | Path, key: str | None = None) -> torch.Tensor:
    """A tensor saved with torch.save (loaded with weights_only=True) or a safetensors file.
    Dict-like files take ``key`` (default: the only tensor, or 'latents')."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise VideoReadError(f"latents file not found: {path}")
    try:
        if path.suffix == ".safetensors":
            obj = load_file(str(path))
        else:
            obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise LatentShapeError(f"could not read latents from {path} ({type(exc).__name__}: {exc}); it must be a "
                               f"tensor saved with torch.save or a safetensors file.") from exc
    if isinstance(obj, dict):
        tensors = {k: v for k, v in obj.items() if torch.is_tensor(v)}
        if key is None:
            key = "latents" if "latents" in tensors else (next(iter(tensors)) if len(tensors) == 1 else None)
        if key not in tensors:
            raise LatentShapeError(f"{path} holds several tensors ({', '.join(tensors)}); name one with --key.")
        obj = tensors[key]
    if not torch.is_tensor(obj):
        raise LatentShapeError(f"{path} holds a {type(obj).__name__}, not a latent tensor.")
    return obj


def save_latents(path: str | Path, z: torch.Tensor) -> Path:
    """Write latents where ``load_latents`` (and ``python -m lab decode --latents``) reads them: a .safetensors
    file (one tensor, 'latents'), or else a plain tensor with torch.save, which torch.load(path,
    weights_only=True) reads. Written to a temporary name and renamed, so a reader never sees half a file."""
    path = Path(path)
    z = z.detach().contiguous().cpu()
    with atomic_path(path) as tmp:
        if path.suffix == ".safetensors":
            save_file({"latents": z}, str(tmp))
        else:
            torch.save(z.clone(), tmp)  # clone: only the tensor's own storage, not a view's larger one
    return path
