"""Wan 2.2: diffusers' ``AutoencoderKLWan`` with ``is_residual=True`` (the TI2V-5B VAE: 48 latent channels,
patch size 2, 16x spatial / 4x temporal compression; tiny test configs of it) and the lab's pruned
students of it.

The decoder is Wan 2.1's causal decoder (one latent frame per step, a cache of the last two input
frames of every causal conv) with residual up blocks (``WanResidualUpBlock``): each block runs its
resnets and upsampler (``upsampler``, not Wan 2.1's ``upsamplers.0``, and it keeps the block's width)
and adds ``avg_shortcut``, a parameter-free ``DupUp3D`` that repeats the block's *input* channels into
the upsampled output. Its output has 12 channels (3 colours x 2x2 pixels) that the VAE unpatchifies.

Channel map (``wan22_groups``). ``DupUp3D(in, out)`` sends input channel ``(c * factor + k) // repeats``
to output channel ``c``, sub-position ``k``. Where a block keeps its width (in == out) that is input
channel c -> output channel c, so the block's output lives in the channel set of its input: in the
TI2V-5B decoder one residual stream runs from conv_in through the mid block (with attention), up0,
up1 and into up2, and it stays at full width (``up0.stream``). A width-changing block (up2: 1024 ->
512) mixes input channels 2c and 2c+1 into output c; with its input at full width the shortcut of any
kept output subset is a gather, which the student does (``IndexedDupUp3D``), so the block's output
(``up3.in``) prunes freely. Prunable: every resnet's hidden channels (``up{i}.res{j}.hidden``), the
stream a width-changing resnet opens (``up{i}.stream``), and a width-changing block's output
(``up{i+1}.in``).
"""

from __future__ import annotations

from diffusers.models.autoencoders.autoencoder_kl_wan import (DupUp3D)
from torch import nn

from lab.arch import register_architecture
from lab.arch.base import Architecture
from lab.arch.groups import ChannelGroup, Consumer
from lab.families.wan.arch import WanArchitecture
from lab.errors import LabError


class Wan22Architecture(WanArchitecture):
    """Wan 2.1's stage map, decoder parts, causality, Flash-VAED ratio and plan (depthwise-separable 3D convs in
    the low-resolution stages, per-frame 2D convs in the two high-resolution ones), frame cache and pipeline
    API; its own channel map, and the DupUp3D shortcuts kept besides Wan 2.1's kept subtrees."""

    name = "wan2.2"
    title = "Wan 2.2"
    tiny_teacher = "wan2.2-tiny"
    kept_subtrees = (*WanArchitecture.kept_subtrees, DupUp3D)

    def owns(self, vae: nn.Module) -> bool:
        return (type(vae).__name__ == "AutoencoderKLWan" and bool(getattr(vae.config, "is_residual", False))) \
            or type(vae).__name__ == "Wan22StudentVAE"

    def prune_groups(self, vae: nn.Module) -> list[ChannelGroup]:
        return wan22_groups(vae)

    def unprunable_reason(self, stage: str) -> str:
        if stage in ("conv_in", "mid"):
            return ("conv_in and mid write the residual stream that the mid attention reads and that the DupUp3D "
                    "shortcuts carry on into the up blocks; it is kept at full width")
        return Architecture.unprunable_reason(self, stage)  # not Wan 2.1's: its up0 reason does not apply

    def stage_output_group(self, stage: str, group_names: list[str], num_up_blocks: int) -> str | None:
        """An up block's output: the next block's ``.in`` group when the block changes width, else the
        last stream opened at or before it (``up0.stream`` for the blocks that keep the input's width)."""
        if not stage.startswith("up"):
            return None
        i = int(stage[2:])
        if i < num_up_blocks - 1 and f"up{i + 1}.in" in group_names:
            return f"up{i + 1}.in"
        for k in range(i, -1, -1):
            for name in (f"up{k}.stream", f"up{k}.in"):
                if name in group_names:
                    return name
        return None

    def reset(self, vae: nn.Module) -> None:
        vae.clear_cache()


WAN22 = register_architecture(Wan22Architecture())


def dupup_source(shortcut: DupUp3D, c: int, k: int) -> int:
    """The input channel that ``DupUp3D`` copies into output channel ``c`` at sub-position ``k``."""
    return (c * shortcut.factor + k) // shortcut.repeats


def is_channelwise(shortcut: DupUp3D) -> bool:
    """True when output channel c reads input channel c only (in == out): the block keeps its input's
    channel set."""
    return shortcut.in_channels == shortcut.out_channels and shortcut.repeats == shortcut.factor


def wan22_groups(vae: nn.Module) -> list[ChannelGroup]:
    """The channel groups of a Wan 2.2-style decoder (``AutoencoderKLWan(is_residual=True)`` or a lab
    student of it); see the module docstring for which are prunable and why."""
    dec = vae.decoder
    if type(dec.up_blocks[0]).__name__ != "WanResidualUpBlock":
        raise LabError(f"Wan 2.2 channel groups are defined for residual up blocks (WanResidualUpBlock); this "
                       f"decoder uses {type(dec.up_blocks[0]).__name__} (a Wan 2.1 decoder: use its own family).")
    stream0 = ChannelGroup("up0.stream", "up0", dec.conv_in.out_channels, prunable=False,
                           producers=[("decoder.conv_in", "rows")],
                           note="the residual stream of conv_in, mid (with attention) and every up block that keeps "
                                "its width (their DupUp3D shortcuts copy channel c to channel c); kept at full width")
    groups = [stream0]
    for j in range(len(dec.mid_block.resnets)):
        rp = f"decoder.mid_block.resnets.{j}"
        stream0.consumers.append(Consumer(f"{rp}.conv1", f"{rp}.norm1"))
        stream0.norms.append(f"{rp}.norm1")
        stream0.producers.append((f"{rp}.conv2", "rows"))

    cur = stream0
    for i, blk in enumerate(dec.up_blocks):
        p, stage = f"decoder.up_blocks.{i}", f"up{i}"
        block_in = cur
        for j, r in enumerate(blk.resnets):
            rp = f"{p}.resnets.{j}"
            src = dst = cur
            if not isinstance(r.conv_shortcut, nn.Identity):
                dst = ChannelGroup(f"{stage}.stream", stage, r.conv2.out_channels,
                                   note=f"opened by {stage}'s width-changing resnet {j}; the block's residual stream")
                if any(g.name == dst.name for g in groups):
                    raise LabError(f"{p} has two width-changing resnets; the Wan 2.2 channel map knows one per block")
                groups.append(dst)
                src.consumers.append(Consumer(f"{rp}.conv_shortcut"))
                dst.producers.append((f"{rp}.conv_shortcut", "rows"))
            src.consumers.append(Consumer(f"{rp}.conv1", f"{rp}.norm1"))
            src.norms.append(f"{rp}.norm1")
            groups.append(ChannelGroup(f"{stage}.res{j}.hidden", stage, r.conv1.out_channels,
                                       producers=[(f"{rp}.conv1", "rows")], norms=[f"{rp}.norm2"],
                                       consumers=[Consumer(f"{rp}.conv2", f"{rp}.norm2")]))
            dst.producers.append((f"{rp}.conv2", "rows"))
            cur = dst
        up = blk.upsampler
        if up is not None:
            if up.mode not in ("upsample2d", "upsample3d"):
                raise LabError(f"{p}.upsampler has mode '{up.mode}', which a decoder should not contain")
            if up.resample[1].out_channels != up.dim:
                raise LabError(f"{p}.upsampler changes width ({up.dim} -> {up.resample[1].out_channels}); Wan 2.2's "
                               f"residual blocks upsample at their own width")
            if up.mode == "upsample3d":
                # Frame 0 skips time_conv, so the resample conv reads the stream itself on the first chunk and
                # time_conv's outputs later: both must use the stream's channel set.
                cur.consumers.append(Consumer(f"{p}.upsampler.time_conv"))
                cur.producers.append((f"{p}.upsampler.time_conv", "rows_paired"))
            cur.consumers.append(Consumer(f"{p}.upsampler.resample.1"))
            sc = blk.avg_shortcut
            if sc is None:
                raise LabError(f"{p} upsamples without a DupUp3D shortcut; not a Wan 2.2 residual block")
            if is_channelwise(sc):
                if cur is not block_in:
                    raise LabError(f"{p}: a block that keeps its width has a width-changing resnet; the Wan 2.2 "
                                   f"channel map does not know this layout")
                cur.producers.append((f"{p}.upsampler.resample.1", "rows"))
            else:
                # The shortcut mixes input channels: it reads every channel of the block's input, which
                # therefore stays whole; any subset of the output is then a gather of it.
                if block_in.prunable:
                    block_in.prunable = False
                    block_in.note = (block_in.note + "; " if block_in.note else "") + \
                        f"read whole by {p}.avg_shortcut (DupUp3D mixes its channels)"
                out = ChannelGroup(f"up{i + 1}.in", f"up{i + 1}", sc.out_channels,
                                   producers=[(f"{p}.upsampler.resample.1", "rows")],
                                   note=f"output of {stage}: its upsampler plus its DupUp3D shortcut of {block_in.name} "
                                        f"(a gather in the student); input of up{i + 1}")
                groups.append(out)
                cur = out
        elif blk.avg_shortcut is not None:
            raise LabError(f"{p} has a DupUp3D shortcut but no upsampler; not a Wan 2.2 residual block")
    cur.consumers.append(Consumer("decoder.conv_out", "decoder.norm_out"))
    cur.norms.append("decoder.norm_out")
    return groups
