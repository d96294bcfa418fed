"""The parameter cell of a notebook: papermill-style plain assignments (frames, size, teacher, ...),
checked here once so every later cell can rely on them, plus the process setup a CPU laptop needs."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch

from lab.errors import ConfigError


def setup(threads: int = 1, seed: int = 0) -> torch.device:
    """Pin torch to ``threads`` CPU threads (a laptop or a shared CI machine stays responsive), seed
    the random generators, and keep weights offline unless the learner asks otherwise (set
    ``HF_HUB_OFFLINE=0`` before starting Jupyter to let ``--weights`` take hub ids). Returns the device
    to use: CUDA when present, else CPU."""
    if threads < 1:
        raise ConfigError(f"threads must be >= 1, got {threads}")
    torch.set_num_threads(int(threads))
    torch.manual_seed(seed)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    logging.getLogger("lab").setLevel(logging.WARNING)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def parse_size(size) -> tuple[int, int]:
    """64, '64', '64x96' or (64, 96) -> (64, 96)."""
    if isinstance(size, int):
        return size, size
    if isinstance(size, str):
        parts = size.lower().split("x")
        try:
            nums = [int(p) for p in parts]
        except ValueError:
            nums = []
        if len(nums) == 1:
            return nums[0], nums[0]
        if len(nums) == 2:
            return nums[0], nums[1]
        raise ConfigError(f"size '{size}' is not HxW (e.g. '64x64') or a single number")
    if isinstance(size, (tuple, list)) and len(size) == 2:
        return int(size[0]), int(size[1])
    raise ConfigError(f"size must be an int, 'HxW' or (H, W), got {size!r}")


@dataclass(frozen=True)
class NotebookParams:
    """Validated sizes for one notebook run against one decoder geometry."""

    teacher: str
    frames: int
    size: tuple[int, int]
    latent_frames: int
    latent_size: tuple[int, int]

    @classmethod
    def check(cls, decoder, teacher: str, frames: int, size) -> "NotebookParams":
        """Raise a ConfigError that says which value to use when ``frames``/``size`` do not fit the
        decoder's latent grid (Wan: 1 + 4k frames, multiples of 8 pixels)."""
        h, w = parse_size(size)
        g = decoder.geometry
        if frames < 1 or (frames - 1) % g.t:
            raise ConfigError(f"frames={frames} does not fit {decoder.name}: it needs 1 + {g.t}k frames; "
                              f"set frames = {max(1 + g.t, g.nearest_frames(frames))} in the parameter cell.")
        if h % g.spatial or w % g.spatial or h < g.spatial or w < g.spatial:
            fix = f"{max(g.spatial, h // g.spatial * g.spatial)}x{max(g.spatial, w // g.spatial * g.spatial)}"
            raise ConfigError(f"size={h}x{w} does not fit {decoder.name}: height and width must be multiples of "
                              f"{g.spatial}; set size = '{fix}' in the parameter cell.")
        return cls(teacher, frames, (h, w), g.latent_frames_for(frames), g.latent_size_for(h, w))
