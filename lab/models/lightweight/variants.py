"""Named lightweight decoders: the paper configs (4-channel SD-style latents) and variants for the
lab's latent spaces (mini-wan, Wan 2.1, mini-ltx, LTX-Video). Registered by ``lab.models`` (its __init__).

Paper parameter counts for 4-channel latents (what the tests hold us to, within 2%):
TAE-192 10.97M, EfficientViT 6.2M, TAE-Temporal 10.9M. Video variants add a frame-expansion 1x1
conv (width x width*t) and, for 32x latents, two more upsampling stages.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file

from lab import paths
from lab.errors import CheckpointError, WeightsNotFoundError
from lab.models.lightweight.adapter import LightweightAdapter
from lab.models.lightweight.effvit import EfficientViTVideoDecoder
from lab.models.lightweight.tae import TinyVideoDecoder
from lab.models.registry import ModelEntry, load_saved, register
from lab.models.weights import place


@dataclass(frozen=True)
class LatentSpace:
    suffix: str  # appended to the architecture name ("" for the 4-channel paper configs)
    teacher: str  # the VAE whose encoder makes these latents ("" when the lab has none)
    channels: int
    t: int
    spatial: int
    label: str


LATENT_SPACES = (
    LatentSpace("", "", 4, 1, 8, "4-channel SD-style image latents (paper config)"),
    LatentSpace("-wan", "mini-wan", 16, 4, 8, "mini-wan latents"),
    LatentSpace("-wan2.1", "wan2.1", 16, 4, 8, "Wan 2.1 latents"),
    LatentSpace("-mini-ltx", "mini-ltx", 128, 8, 32, "mini-ltx latents"),
    LatentSpace("-ltx", "ltx-video", 128, 8, 32, "LTX-Video latents"),
)


def tae_192_config(space: LatentSpace) -> dict:
    widths, blocks = ((192,) * 4, (3, 3, 3, 1)) if space.spatial == 8 else \
        ((192, 192, 192, 128, 64, 64), (3, 3, 3, 1, 1, 1))
    return dict(latent_channels=space.channels, block_out_channels=widths, num_blocks=blocks,
                upsample_mode="nearest", temporal_compression=space.t, teacher=space.teacher,
                architecture="tae-192")


def tae_temporal_config(space: LatentSpace) -> dict:
    cfg = tae_192_config(space)
    blocks = (3, 2, 2, 1) + cfg["num_blocks"][4:]
    return {**cfg, "num_blocks": blocks, "upsample_mode": "bilinear", "temporal_mid_layers": 2,
            "architecture": "tae-temporal"}


def effvit_config(space: LatentSpace) -> dict:
    depths = (0, 5, 10, 0, 0, 0) if space.spatial == 8 else (0, 5, 10, 1, 1, 0)
    return dict(latent_channels=space.channels, block_out_channels=(128, 128, 128, 256, 256, 256),
                layers_per_block=depths, norm_type="batch_norm", act_fn="relu", temporal_compression=space.t,
                teacher=space.teacher, architecture="effvit")


# (name prefix for video spaces, name for the paper config, class, config maker, description)
ARCHITECTURES = (
    ("tae-192", "tae-192", TinyVideoDecoder, tae_192_config,
     "TAE-192: tiny-autoencoder decoder, width 192, blocks 3,3,3,1, nearest upsampling; causal"),
    ("efficientvit", "effvit", EfficientViTVideoDecoder, effvit_config,
     "EfficientViT (DC-AE) decoder, widths 128x3,256x3, depths 0,5,10,0,0,0, BatchNorm+ReLU; causal"),
    ("tae-temporal", "tae-temporal", TinyVideoDecoder, tae_temporal_config,
     "TAE-Temporal: blocks 3,2,2,1, bilinear, spatio-temporal mid block (SVD); not causal"),
)


# Width-scaled variants for mini-wan latents: the paper configs' block structure and depths at narrower
# widths, so that each decoder (0.4-1.3M params) is comparable to mini-wan's own 2.65M-param decoder and
# trains on a CPU; their trained weights ship in data/checkpoints/<name>/ (python -m lab ship, lab.ship).
MINI_WAN = LATENT_SPACES[1]


def _narrow(config: dict, width: int) -> dict:
    """``config`` with every TAE stage at ``width`` (the temporal mid block's heads at width/2)."""
    out = {**config, "block_out_channels": (width,) * len(config["block_out_channels"])}
    if config.get("temporal_mid_layers"):
        out["temporal_mid_head_dim"] = width // 2
    return out


def _narrow_effvit(config: dict, width: int) -> dict:
    """EfficientViT widths scaled by width/128 (128x3, 256x3 -> width x3, 2 width x3)."""
    return {**config, "block_out_channels": tuple(w * width // 128 for w in config["block_out_channels"])}


# (name, class, config, description)
SMALL_VARIANTS = (
    ("tae-64-wan", TinyVideoDecoder, _narrow(tae_192_config(MINI_WAN), 64),
     "TAE-192 structure at width 64 (blocks 3,3,3,1, nearest upsampling; causal); mini-wan latents"),
    ("tae-temporal-64-wan", TinyVideoDecoder, _narrow(tae_temporal_config(MINI_WAN), 64),
     "TAE-Temporal structure at width 64 (blocks 3,2,2,1, bilinear, spatio-temporal mid block; not causal); "
     "mini-wan latents"),
    ("efficientvit-32-wan", EfficientViTVideoDecoder, _narrow_effvit(effvit_config(MINI_WAN), 32),
     "EfficientViT (DC-AE) structure at widths 32x3,64x3 (depths 0,5,10,0,0,0, BatchNorm+ReLU; causal); "
     "mini-wan latents"),
)


def build(cls, config: dict, name: str, device=None, dtype=None) -> LightweightAdapter:
    return LightweightAdapter(name, place(cls(**config), device, dtype))


def _loader(name: str, cls, config: dict):
    def load(weights=None, device=None, dtype=None) -> LightweightAdapter:
        if weights is None:
            trained = paths.checkpoints_dir() / name
            weights = str(trained) if (trained / "config.json").exists() else "random"
        if weights == "random":
            return build(cls, config, name, device, dtype)
        return _load_weights(name, cls, config, Path(weights).expanduser(), device, dtype)
    return load


def _load_weights(name, cls, config, path: Path, device, dtype) -> LightweightAdapter:
    if path.is_dir():
        dec = load_saved(path, device=device, dtype=dtype)
        if not isinstance(dec, LightweightAdapter) or type(dec.model) is not cls:
            raise CheckpointError(f"{path} holds a {type(getattr(dec, 'model', dec)).__name__}, not a {cls.__name__} "
                                  f"({name}); load it by its folder (--decoder {path}) instead.")
        dec.name = name
        return dec
    if path.suffix == ".safetensors" and path.is_file():
        dec = build(cls, config, name)
        try:
            dec.model.load_state_dict(load_file(str(path)), strict=True)
        except RuntimeError as exc:
            raise CheckpointError(f"{path} does not match {name}'s architecture: {str(exc).splitlines()[0]}. "
                                  f"Pass the weights trained for {name}.") from exc
        return place(dec, device, dtype)
    raise WeightsNotFoundError(f"{name}: weights {path} not found. Pass a folder saved by the lab "
                               f"(lab_decoder.json + diffusers files), a .safetensors state dict, or 'random'.")


def _counter(cls, config: dict):
    def count() -> int:
        with torch.device("meta"):
            model = cls(**config)
        return sum(p.numel() for p in model.parameters())
    return count


def variant_names() -> list[str]:
    return ([paper if not s.suffix else prefix + s.suffix for prefix, paper, *_ in ARCHITECTURES for s in LATENT_SPACES]
            + small_variant_names())


def small_variant_names() -> list[str]:
    return [name for name, *_ in SMALL_VARIANTS]


def _register(name: str, cls, config: dict, space: LatentSpace, description: str, tag: str) -> None:
    trained = paths.checkpoints_dir() / name / "config.json"
    weights = (f"data/checkpoints/{name} (trained against {space.teacher})" if trained.exists() else
               "random (untrained: train with python -m lab distill, or pass --weights FOLDER)")
    register(ModelEntry(
        name=name, family="lightweight", latent_channels=space.channels,
        compression=(space.t, space.spatial, space.spatial), weights=weights,
        loader=_loader(name, cls, config), param_counter=_counter(cls, config),
        description=description, tags=("lightweight", tag)))


def register_all() -> None:
    for prefix, paper, cls, make, description in ARCHITECTURES:
        for space in LATENT_SPACES:
            name = paper if not space.suffix else prefix + space.suffix
            _register(name, cls, make(space), space, f"{description}; {space.label}", prefix)
    for name, cls, config, description in SMALL_VARIANTS:
        prefix = next(p for p, paper, *_ in ARCHITECTURES if paper == config["architecture"])
        _register(name, cls, config, MINI_WAN, description, prefix)
