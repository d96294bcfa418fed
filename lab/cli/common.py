"""Argument helpers shared by commands.

Values are checked where argparse reads them (``type=``), so a bad one is a usage error naming the
flag and the fix, never a traceback from deep inside a command.

This module and every command's ``add_arguments`` import no torch: ``python -m lab --help`` and
``python -m lab COMMAND --help`` build the parser without it (seconds saved on every call). What needs
torch (lab.devices, lab.data.video) is imported when a value is checked or a command runs."""

from __future__ import annotations

import argparse
import os

from lab.errors import ConfigError, LabError

#: The compute dtypes commands take by name (lab.devices.DTYPES maps them to torch dtypes; a test keeps the two equal).
DTYPE_NAMES = ("bf16", "fp16", "fp32")


def add_decoder_args(p: argparse.ArgumentParser, flag: str = "--decoder", default: str | None = None,
                     decoding: bool = False) -> None:
    """``decoding``: the command only decodes (lab.models.load_for_decoding), so a plain name gets the default
    runtime; its help says so."""
    p.add_argument(flag, default=default, required=default is None,
                   help="a registered decoder name (python -m lab models) or a folder saved by the lab" +
                        (", optionally NAME@RUNTIME as in lab bench; without one, a Wan 2.1 decoder on the CPU "
                         "decodes @fused (the same output within a rounding, faster from 128 px up) and "
                         "NAME@eager runs diffusers' modules" if decoding else ""))
    p.add_argument("--weights", default=None,
                   help="override the weights: 'random', a hub id, a diffusers folder or a checkpoint file")


def add_device_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="cpu", type=device_arg, help="cpu, cuda or cuda:N (default cpu)")
    add_dtype_arg(p)


def add_dtype_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dtype", default="fp32", choices=DTYPE_NAMES, help="compute dtype (default fp32)")


def dtype_of(name: str):
    """--dtype as a torch dtype."""
    from lab.devices import DTYPES  # deferred: torch loads when a command runs, not for --help
    return DTYPES[name]


def device_arg(text: str, error: type[Exception] = argparse.ArgumentTypeError, where: str = "") -> str:
    """--device: a name torch understands (lab.devices.device_arg), checked when the arguments are parsed."""
    from lab.devices import device_arg as check  # deferred: torch loads when a command runs, not for --help
    return check(text, error=error, where=where)


def add_downloads_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--allow-downloads", action="store_true",
                   help="let the lab download missing public metric weights (VGG16/LPIPS, InceptionV3) into "
                        "$LAB_METRIC_WEIGHTS; without it only local files are read (same as LAB_ALLOW_DOWNLOADS=1)")


def apply_downloads_arg(args) -> None:
    # The loaders read the environment, so the permission reaches them however deep they are called.
    if getattr(args, "allow_downloads", False):
        os.environ["LAB_ALLOW_DOWNLOADS"] = "1"


def device_of(name: str):
    """--device as a torch.device: a name torch understands, on a device this machine has
    (lab.devices.check_device)."""
    from lab.devices import check_device  # deferred: torch loads when a command runs, not for --help
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
    from lab.data.video import check_fps  # deferred: torch loads when a command runs, not for --help
    try:
        return check_fps(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def threads_arg(text: str) -> int:
    """--threads: 0 (torch's choice) up to lab.devices.max_threads()."""
    from lab.devices import check_threads  # deferred: torch loads when a command runs, not for --help
    try:
        return check_threads(int(text), error=argparse.ArgumentTypeError)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got '{text}'") from None
