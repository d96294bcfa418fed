"""Which device a command may run on: one check, so every command says the same thing when CUDA is missing."""

from __future__ import annotations

import torch

from lab.errors import LabError


def check_device(device: str | torch.device) -> torch.device:
    """``device`` as a torch.device; a CUDA device that this torch cannot use is refused, naming the torch
    build (a CPU-only build and a CUDA build without a visible GPU need different fixes)."""
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        build = ("a CPU-only build: install a CUDA build of torch" if torch.version.cuda is None
                 else "a CUDA build, but no GPU or driver is visible (check nvidia-smi and CUDA_VISIBLE_DEVICES)")
        raise LabError(f"--device {device} was asked for but this machine has no CUDA GPU that torch can use "
                       f"(CUDA is not available: torch {torch.__version__} has torch.version.cuda = "
                       f"{torch.version.cuda}, {build}); or use --device cpu.")
    return dev
