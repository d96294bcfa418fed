"""Latent files: load saved latents (no pickles executed), save them as safetensors."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from lab.errors import LatentShapeError, VideoReadError


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
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    save_file({"latents": z.detach().contiguous().cpu()}, str(tmp))
    tmp.replace(path)
    return path
