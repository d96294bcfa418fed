"""Argument helpers shared by commands.

Values are checked where argparse reads them (``type=``), so a bad one is a usage error naming the
flag and the fix, never a traceback from deep inside a command."""

from __future__ import annotations

import argparse
import os

import torch

from lab.devices import DTYPES, check_device, check_threads, device_arg
from lab.errors import ConfigError, LabError
from lab.data.video import check_fps


def add_decoder_args(p: argparse.ArgumentParser, flag: str = "--decoder", default: str | None = None) -> None:
    p.add_argument(flag, default=default, required=default is None,
                   help="a registered decoder name (python -m lab models) or a folder saved by the lab")
    p.add_argument("--weights", default=None,
                   help="override the weights: 'random', a hub id, a diffusers folder or a checkpoint file")


def add_device_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="cpu", type=device_arg, help="cpu, cuda or cuda:N (default cpu)")
    p.add_argument("--dtype", default="fp32", choices=sorted(DTYPES), help="compute dtype (default fp32)")


def add_downloads_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--allow-downloads", action="store_true",
                   help="let the lab download missing public metric weights (VGG16/LPIPS, InceptionV3) into "
                        "$LAB_METRIC_WEIGHTS; without it only local files are read (same as LAB_ALLOW_DOWNLOADS=1)")


def apply_downloads_arg(args) -> None:
    # The loaders read the environment, so the permission reaches them however deep they are called.
    if getattr(args, "allow_downloads", False):
        os.environ["LAB_ALLOW_DOWNLOADS"] = "1"


def device_of(name: str) -> torch.device:
    """--device: a name torch understands, on a device this machine has (lab.devices.check_device)."""
    return check_device(device_arg(name, error=LabError))


def parse_size(text: str) -> tuple[int, int]:
    try:
        h, w = (int(x) for x in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like HxW (e.g. 480x832), got '{text}'") from None
    if h <= 0 or w <= 0:
        raise argparse.ArgumentTypeError(f"size must be positive, got '{text}'")
    return h, w


def positive_int(text: str) -> int:
    """A whole number >= 1 (frame counts, repeats)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got '{text}'") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def fps_arg(text: str) -> float:
    """A frame rate: finite and > 0 (an encoder given 0 silently writes 24 fps)."""
    try:
        return check_fps(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def threads_arg(text: str) -> int:
    """--threads: 0 (torch's choice) up to max_threads()."""
    try:
        return check_threads(int(text), error=argparse.ArgumentTypeError)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got '{text}'") from None
