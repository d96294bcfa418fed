"""TAEF2 (madebyollin/taesd, MIT) as a diffusers-style model, and the released weights read into it.

``TAEF2Model`` is TAESD's layout (lab.families.taef2.arch) with widths per channel group, so the released
autoencoder and the lab's pruned students of its decoder are one class: a student is the same model at
narrower widths, without the encoder, whose config records the teacher and the kept channels. It loads
the released fp16 state dicts (``taef2_decoder.pth``, ``taef2_encoder.pth``) exactly, read with
``torch.load(weights_only=True)`` (no pickled code runs), and saves/loads like any diffusers model.

Two departures from the release, both exact for its weights:
- every conv has a bias (the release has none on the convs after each upsample and in the pooled
  branch); they load as zeros, and give the least-squares fold of pruning (lab.prune.transfer) a place
  for the mean of the dropped channels. 1,152 zero parameters, counted in ``decoder_params``.
- video: frames are decoded as a batch of images (N*T), and the model maps TAESD's [0, 1] pixels to
  the lab's [-1, 1] (the adapters are lab.families.taef2.adapters).
"""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.autoencoders.vae import DecoderOutput
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from lab.errors import ConfigError, WeightsNotFoundError
from lab.families.taef2.arch import TAEF2_POOLED, TAESD_BLOCKS, decoder_layout

DECODER_FILE = "taef2_decoder.pth"
ENCODER_FILE = "taef2_encoder.pth"


def _conv(n_in: int, n_out: int, **kw) -> nn.Conv2d:
    return nn.Conv2d(n_in, n_out, 3, padding=1, **kw)


class Clamp(nn.Module):
    """TAESD's soft clamp of the latents to (-3, 3)."""

    def forward(self, x):
        return torch.tanh(x / 3) * 3


class Block(nn.Module):
    """relu(conv(x) + x), with the optional pooled branch added to x first (TAESD's mid-block GroupNorm
    variant). ``h1``/``h2``: the widths of the two hidden convs."""

    def __init__(self, width: int, h1: int, h2: int, pool_width: int | None = None):
        super().__init__()
        self.conv = nn.Sequential(_conv(width, h1), nn.ReLU(), _conv(h1, h2), nn.ReLU(), _conv(h2, width))
        self.fuse = nn.ReLU()
        self.pool = None
        if pool_width:
            self.pool = nn.Sequential(nn.Conv2d(width, pool_width, 1), nn.GroupNorm(4, pool_width), nn.ReLU(),
                                      nn.Conv2d(pool_width, width, 1))

    def forward(self, x):
        if self.pool is not None:
            x = x + self.pool(x)
        return self.fuse(self.conv(x) + x)


def full_widths(blocks, width: int) -> dict[str, int]:
    """Group name -> width of the unpruned decoder (lab.families.taef2.arch.taef2_groups names them)."""
    out = {}
    for s in decoder_layout(tuple(blocks)).stages:
        out[f"{s.name}.stream"] = width
        for j in range(len(s.blocks)):
            out[f"{s.name}.block{j}.h1"] = out[f"{s.name}.block{j}.h2"] = width
    return out


def _encoder(latent_channels: int) -> nn.Sequential:
    """TAESD's encoder (the last three blocks pooled, as in TAEF2); the teacher's only."""
    def blk(pool=False):
        return Block(64, 64, 64, 256 if pool else None)
    return nn.Sequential(_conv(3, 64), blk(), _conv(64, 64, stride=2), blk(), blk(), blk(),
                         _conv(64, 64, stride=2), blk(), blk(), blk(), _conv(64, 64, stride=2),
                         blk(True), blk(True), blk(True), _conv(64, latent_channels))


class TAEF2Model(ModelMixin, ConfigMixin):
    """TAESD-layout autoencoder: ``decode`` raw latents (N, 32, [T,] H, W) -> pixels in [-1, 1], and
    (``with_encoder=True``) ``encode`` pixels in [-1, 1] -> raw latents. ``widths``: group -> width for
    the groups a pruning narrowed, ``kept``: their teacher channel indices (students only)."""

    config_name = "config.json"

    @register_to_config
    def __init__(self, latent_channels: int = 32, width: int = 64, pool_width: int = 256,
                 blocks: tuple = TAESD_BLOCKS, pooled_stages: tuple = TAEF2_POOLED, with_encoder: bool = True,
                 widths: dict | None = None, kept: dict | None = None, teacher: str = "", criterion: str = "",
                 ratios: dict | None = None, operators: dict | None = None):
        super().__init__()
        full = full_widths(blocks, width)
        widths = dict(widths or {})
        bad = [g for g in list(widths) + list(kept or {}) if g not in full]
        if bad:
            raise ConfigError(f"TAEF2 has no channel group(s) {', '.join(bad)}; its groups: {', '.join(full)}")
        w = {**full, **{g: int(v) for g, v in widths.items()}}
        lay = decoder_layout(tuple(blocks))
        layers: list[nn.Module] = [Clamp(), _conv(latent_channels, w["mid.stream"]), nn.ReLU()]
        prev = None
        for s in lay.stages:
            cw = w[f"{s.name}.stream"]
            if prev is not None:
                layers += [nn.Upsample(scale_factor=2), _conv(prev, cw)]
            for j in range(len(s.blocks)):
                layers.append(Block(cw, w[f"{s.name}.block{j}.h1"], w[f"{s.name}.block{j}.h2"],
                                    pool_width if s.name in pooled_stages else None))
            prev = cw
        layers.append(_conv(prev, 3))
        self.decoder = nn.Sequential(*layers)
        self.encoder = _encoder(latent_channels) if with_encoder else None

    def teacher_widths(self) -> dict[str, int]:
        return full_widths(self.config.blocks, self.config.width)

    @staticmethod
    def _frames(x: torch.Tensor, fn) -> torch.Tensor:
        if x.ndim == 4:
            return fn(x)
        n, c, t, h, w = x.shape
        y = fn(x.transpose(1, 2).reshape(n * t, c, h, w))
        return y.reshape(n, t, *y.shape[1:]).transpose(1, 2)

    def decode(self, z: torch.Tensor, return_dict: bool = True):
        out = self._frames(z, self.decoder) * 2 - 1
        return DecoderOutput(sample=out) if return_dict else (out,)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        if self.encoder is None:
            raise ConfigError("this TAEF2 model has no encoder (a pruned student); encode with its teacher.")
        return self._frames((x + 1) / 2, self.encoder)

    def forward(self, z: torch.Tensor):
        return self.decode(z)


def _read_state(path: Path, prefix: str) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise WeightsNotFoundError(f"taef2: {path} is missing; the folder needs {DECODER_FILE} and {ENCODER_FILE} "
                                   f"(madebyollin/taesd, MIT), or pass --weights random.")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated file or one holding more than tensors
        raise WeightsNotFoundError(f"taef2: cannot read {path} as a state dict of tensors "
                                   f"({type(exc).__name__}); download it again.") from None
    return {f"{prefix}.{k}": v for k, v in state.items()}


def load_released(folder: str | Path) -> TAEF2Model:
    """The released TAEF2 from a folder holding its two .pth state dicts (fp16; loaded as fp32). Every
    released tensor must match one of the model's; the biases the release lacks start at zero."""
    folder = Path(folder).expanduser()
    state = {**_read_state(folder / DECODER_FILE, "decoder"), **_read_state(folder / ENCODER_FILE, "encoder")}
    model = TAEF2Model()
    own = model.state_dict()
    extra = [k for k in state if k not in own or tuple(state[k].shape) != tuple(own[k].shape)]
    if extra:
        raise WeightsNotFoundError(f"taef2: {folder} holds tensors that do not fit TAESD's TAEF2 layout "
                                   f"({', '.join(extra[:3])}...); these are not TAEF2 weights.")
    missing = [k for k in own if k not in state]
    not_bias = [k for k in missing if not k.endswith(".bias")]
    if not_bias:
        raise WeightsNotFoundError(f"taef2: {folder} lacks {', '.join(not_bias[:3])}; these are not TAEF2 weights.")
    for k in missing:
        state[k] = torch.zeros_like(own[k])
    model.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
    return model
