"""The compute a run may ask for: a device torch understands and this machine has, and a CPU thread count
torch can start. One place, so the commands and the config files say the same thing."""

from __future__ import annotations

import argparse
import os

import torch

from lab.errors import ConfigError, LabError

#: Compute dtypes by the names commands and configs take.
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


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


def device_arg(text: str, error: type[Exception] = argparse.ArgumentTypeError, where: str = "") -> str:
    """A device name torch understands (cpu, cuda, cuda:N, mps); kept as text."""
    try:
        torch.device(text)
    except (RuntimeError, ValueError, TypeError):
        raise error(f"{where}unknown device {text!r}; use cpu, cuda or cuda:N") from None
    return text


def max_threads() -> int:
    """The most torch threads the lab sets: this machine's CPU count. torch allocates per-thread state
    up front, so an absurd count (100000) ends in a MemoryError or a segfault, not in slowness."""
    return os.cpu_count() or 1


def check_threads(n: int | None, where: str = "", error: type[Exception] = ConfigError) -> int | None:
    """``n`` when it is None, 0 (torch's choice) or 1..max_threads(); else ``error`` naming the bound."""
    if n is None:
        return None
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise error(f"{where}must be a whole number >= 1 (or 0 for torch's choice), got {n!r}")
    if n > max_threads():
        raise error(f"{where}must be at most {max_threads()}, this machine's CPU count; got {n}")
    return n
