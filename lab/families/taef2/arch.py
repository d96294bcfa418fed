"""TAEF2's structure: the tiny autoencoder for FLUX.2's latent space (madebyollin/taesd, MIT), a real decoder trained
at scale by someone else. The lab uses it to test its method on a decoder it did not train itself.

An image decoder in TAESD's layout (one ``nn.Sequential``; 32 latent channels at /8; 64 channels
throughout), decoded frame by frame: no causal cache, no temporal layers, so no operator swap (its convs
are already 2D). Layer indices of the decoder Sequential (``blocks=(3, 3, 3, 1)``)::

    0 Clamp  1 conv_in  2 ReLU | 3 4 5 Block (mid, with the pooled branch) | 6 Upsample 7 conv | 8 9 10 Block
    (up0) | 11 Upsample 12 conv | 13 14 15 Block (up1) | 16 Upsample 17 conv | 18 Block (up2) | 19 conv_out

A Block is ``relu(conv.4(relu(conv.2(relu(conv.0(x))))) + x)``, and the blocks of the mid stage first add
a pooled branch, ``x = x + pool.3(relu(GroupNorm(4)(pool.0(x))))``. The model class is
lab.families.taef2.model.TAEF2Model.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from lab.arch import register_architecture
from lab.arch.base import Architecture
from lab.arch.groups import ChannelGroup, Consumer
from lab.errors import ConfigError

#: Blocks per stage of TAESD's decoder (mid, up0, up1, up2), and the stages whose blocks have the pooled branch.
TAESD_BLOCKS = (3, 3, 3, 1)
TAEF2_POOLED = ("mid",)


@dataclass(frozen=True)
class Stage:
    name: str
    upsample: int | None   # index of the nn.Upsample (None for mid)
    conv: int | None       # index of the conv after it
    blocks: tuple[int, ...]


@dataclass(frozen=True)
class Layout:
    conv_in: int
    stages: tuple[Stage, ...]
    conv_out: int
    length: int


def decoder_layout(blocks=TAESD_BLOCKS) -> Layout:
    """Where every layer sits in the decoder Sequential, for ``blocks`` blocks in mid, up0, up1, ..."""
    i, stages = 3, []
    for k, n in enumerate(blocks):
        up = conv = None
        if k > 0:
            up, conv, i = i, i + 1, i + 2
        stages.append(Stage("mid" if k == 0 else f"up{k - 1}", up, conv, tuple(range(i, i + n))))
        i += n
    return Layout(conv_in=1, stages=tuple(stages), conv_out=i, length=i + 1)


class TAEF2Architecture(Architecture):
    name = "taef2"
    title = "TAEF2"
    tiny_teacher = "taef2"  # random weights: the real layout
    # Not a Flash-VAED family; by analogy with it, the last two (high-resolution) up stages at 25%.
    flash_vaed_ratio = 0.25
    plans = {"keep": {}}  # 2D convs already: nothing for the lab's operator plans to replace
    causal_convs = ()
    kept_subtrees = ()
    frame_cache = False
    pipeline_api = ""     # no diffusers video pipeline decodes FLUX.2 latents through a video VAE API

    def num_up_blocks(self, vae: nn.Module) -> int:
        return len(vae.config.blocks) - 1

    def stage_paths(self, num_up_blocks: int) -> dict[str, list[str]]:
        """The stage names and paths of TAESD's layout (with one block per stage for other depths); a
        decoder's own paths follow its config's ``blocks`` (``stages_of``)."""
        blocks = TAESD_BLOCKS if num_up_blocks == len(TAESD_BLOCKS) - 1 else (1,) * (num_up_blocks + 1)
        return self._paths(decoder_layout(blocks))

    def stages_of(self, vae: nn.Module) -> dict[str, list[str]]:
        return self._paths(decoder_layout(tuple(vae.config.blocks)))

    @staticmethod
    def _paths(lay: Layout) -> dict[str, list[str]]:
        out = {"conv_in": [f"decoder.{lay.conv_in}"]}
        for s in lay.stages:
            pre = [] if s.upsample is None else [f"decoder.{s.upsample}", f"decoder.{s.conv}"]
            out[s.name] = pre + [f"decoder.{b}" for b in s.blocks]
        out["head"] = [f"decoder.{lay.conv_out}"]
        return out

    def owns(self, vae: nn.Module) -> bool:
        # the lab's TAESD-layout model: the released TAEF2 and its pruned students are one class
        return type(vae).__name__ == "TAEF2Model"

    def decoder_parts(self, vae: nn.Module) -> list[nn.Module]:
        return [vae.decoder]

    def encoder_parts(self, vae: nn.Module) -> list[nn.Module]:
        return [] if vae.encoder is None else [vae.encoder]  # a pruned student has none

    # TAEF2's latents are used as they are (its adapters normalise nothing): identity statistics.
    def latent_stats(self, vae: nn.Module) -> tuple[list[float], list[float], float]:
        c = vae.config.latent_channels
        return [0.0] * c, [1.0] * c, 1.0

    def set_latent_stats(self, vae: nn.Module, mean: list[float], std: list[float]) -> None:
        raise ConfigError("TAEF2 keeps no latent statistics (its latents are used as they are), and the lab does "
                          "not train TAEF2 teachers; export a teacher of a trainable preset instead.")

    def is_causal(self, vae: nn.Module) -> bool:
        return False

    def is_swapped(self, vae: nn.Module) -> bool:
        return False

    def prune_groups(self, vae: nn.Module) -> list[ChannelGroup]:
        return taef2_groups(vae)

    def stage_output_group(self, stage: str, group_names: list[str], num_up_blocks: int) -> str | None:
        """The stage's stream (conv_in writes mid's stream)."""
        name = "mid.stream" if stage == "conv_in" else f"{stage}.stream"
        return name if name in group_names else None

    def decode_raw(self, vae: nn.Module, z, decode_timestep: float = 0.0):
        return vae.decode(z).sample


TAEF2 = register_architecture(TAEF2Architecture())


def taef2_groups(vae: nn.Module) -> list[ChannelGroup]:
    """The channel groups of a TAESD-layout decoder (the TAEF2 teacher or a lab student of it).

    Each stage has one residual stream (``mid.stream``, ``up{i}.stream``), written by the conv that opens
    the stage (conv_in for mid, the conv after each upsample), every block's ``conv.4`` and, in pooled
    blocks, ``pool.3``; read by every block's ``conv.0`` and ``pool.0`` and by the next stage's opening
    conv (through the nearest upsample, which copies channels) or conv_out. Each block's two hidden
    widths (``conv.0`` and ``conv.2`` outputs) are groups of their own. The pooled branch's 256-wide
    hidden is not a group: GroupNorm(4) normalises it over 64-channel groups, so dropping channels would
    change the statistics of the kept ones; it keeps its width.
    """
    lay = decoder_layout(tuple(vae.config.blocks))
    dec = vae.decoder
    groups: list[ChannelGroup] = []
    stream = None
    for s in lay.stages:
        opener = lay.conv_in if s.conv is None else s.conv
        if stream is not None:
            stream.consumers.append(Consumer(f"decoder.{opener}"))
        stream = ChannelGroup(f"{s.name}.stream", s.name, dec[opener].out_channels,
                              producers=[(f"decoder.{opener}", "rows")],
                              note=f"the residual stream of {s.name}")
        groups.append(stream)
        for j, b in enumerate(s.blocks):
            p, blk = f"decoder.{b}", dec[b]
            if blk.pool is not None:
                stream.consumers.append(Consumer(f"{p}.pool.0"))
                stream.producers.append((f"{p}.pool.3", "rows"))
            stream.consumers.append(Consumer(f"{p}.conv.0"))
            stream.producers.append((f"{p}.conv.4", "rows"))
            groups.append(ChannelGroup(f"{s.name}.block{j}.h1", s.name, blk.conv[0].out_channels,
                                       producers=[(f"{p}.conv.0", "rows")], consumers=[Consumer(f"{p}.conv.2")]))
            groups.append(ChannelGroup(f"{s.name}.block{j}.h2", s.name, blk.conv[2].out_channels,
                                       producers=[(f"{p}.conv.2", "rows")], consumers=[Consumer(f"{p}.conv.4")]))
    stream.consumers.append(Consumer(f"decoder.{lay.conv_out}"))
    return groups
