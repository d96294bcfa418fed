"""Argument helpers shared by commands."""

from __future__ import annotations

import argparse

import torch

from lab.errors import LabError


def add_decoder_args(p: argparse.ArgumentParser, flag: str = "--decoder", default: str | None = None) -> None:
    p.add_argument(flag, default=default, required=default is None,
                   help="a registered decoder name (python -m lab models) or a folder saved by the lab")
    p.add_argument("--weights", default=None,
                   help="override the weights: 'random', a hub id, a diffusers folder or a checkpoint file")


def add_device_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    p.add_argument("--dtype", default="fp32", choices=sorted(DTYPES), help="compute dtype (default fp32)")


DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def device_of(name: str) -> torch.device:
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise LabError(f"--device {name} was asked for but this machine has no CUDA GPU; use --device cpu.")
    return dev


def parse_size(text: str) -> tuple[int, int]:
    try:
        h, w = (int(x) for x in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like HxW (e.g. 480x832), got '{text}'") from None
    if h <= 0 or w <= 0:
        raise argparse.ArgumentTypeError(f"size must be positive, got '{text}'")
    return h, w
